import Testing
@testable import Kernels

/// Obviously-correct float64 references: direct loops with explicit bounds checks, written
/// from the PyTorch definitions, sharing nothing with the code under test.
enum Reference {
    struct Params {
        var stride = Size2D(1), padding = Size2D(0), dilation = Size2D(1)
    }

    /// Output length of a sliding window along one axis.
    static func outputLength(_ input: Int, _ kernel: Int, _ stride: Int, _ padding: Int, _ dilation: Int) -> Int {
        (input + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
    }

    /// Output length of a transposed convolution along one axis:
    /// (input − 1)·stride − 2·padding + dilation·(kernel − 1) + outputPadding + 1.
    static func transposedLength(_ input: Int, _ kernel: Int, _ stride: Int, _ padding: Int, _ dilation: Int,
                                 outputPadding: Int) -> Int {
        (input - 1) * stride - 2 * padding + dilation * (kernel - 1) + outputPadding + 1
    }

    /// Direct convolution: y[n,f,oh,ow] = b[f] + Σ x[n,c,ih,iw]·w[f,c,kh,kw].
    static func conv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ p: Params) -> (shape: [Int], values: [Double]) {
        conv2d(x.scalars.map(Double.init), x.shape, w.scalars.map(Double.init), w.shape, b?.scalars.map(Double.init), p)
    }

    static func conv2d(_ x: [Double], _ xShape: [Int], _ w: [Double], _ wShape: [Int], _ b: [Double]?,
                       _ p: Params) -> (shape: [Int], values: [Double]) {
        let (n, c, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (f, kh, kw) = (wShape[0], wShape[2], wShape[3])
        let oh = outputLength(h, kh, p.stride.height, p.padding.height, p.dilation.height)
        let ow = outputLength(wd, kw, p.stride.width, p.padding.width, p.dilation.width)
        var y = [Double](repeating: 0, count: n * f * oh * ow)
        for ni in 0..<n { for fi in 0..<f { for oy in 0..<oh { for ox in 0..<ow {
            var sum = b?[fi] ?? 0
            for ci in 0..<c { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * p.stride.height - p.padding.height + ky * p.dilation.height
                let ix = ox * p.stride.width - p.padding.width + kx * p.dilation.width
                guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                sum += x[((ni * c + ci) * h + iy) * wd + ix] * w[((fi * c + ci) * kh + ky) * kw + kx]
            } } }
            y[((ni * f + fi) * oh + oy) * ow + ox] = sum
        } } } }
        return ([n, f, oh, ow], y)
    }

    /// Weight gradient of a convolution: dw[f,c,kh,kw] = Σ dy[n,f,oh,ow]·x[n,c,ih,iw] over every
    /// output position whose window tap (kh, kw) lies inside the image.
    static func conv2dWeightGradient(_ dy: Tensor, _ x: Tensor, weightShape: [Int], _ p: Params) -> [Double] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (f, kh, kw) = (weightShape[0], weightShape[2], weightShape[3])
        let (oh, ow) = (dy.shape[2], dy.shape[3])
        var dw = [Double](repeating: 0, count: f * c * kh * kw)
        for ni in 0..<n { for fi in 0..<f { for oy in 0..<oh { for ox in 0..<ow {
            let gradient = Double(dy.scalars[((ni * f + fi) * oh + oy) * ow + ox])
            for ci in 0..<c { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * p.stride.height - p.padding.height + ky * p.dilation.height
                let ix = ox * p.stride.width - p.padding.width + kx * p.dilation.width
                guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                dw[((fi * c + ci) * kh + ky) * kw + kx] += gradient * Double(x.scalars[((ni * c + ci) * h + iy) * wd + ix])
            } } }
        } } } }
        return dw
    }

    /// Transposed convolution by scattering: each input pixel adds x·w[c_in, c_out] into the
    /// output window it maps to.
    static func convTranspose2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ p: Params, outputPadding: Size2D) -> (shape: [Int], values: [Double]) {
        convTranspose2d(x.scalars.map(Double.init), x.shape, w.scalars.map(Double.init), w.shape,
                        b?.scalars.map(Double.init), p, outputPadding: outputPadding)
    }

    static func convTranspose2d(_ x: [Double], _ xShape: [Int], _ w: [Double], _ wShape: [Int], _ b: [Double]?,
                                _ p: Params, outputPadding: Size2D) -> (shape: [Int], values: [Double]) {
        let (n, cin, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (cout, kh, kw) = (wShape[1], wShape[2], wShape[3])
        let oh = transposedLength(h, kh, p.stride.height, p.padding.height, p.dilation.height, outputPadding: outputPadding.height)
        let ow = transposedLength(wd, kw, p.stride.width, p.padding.width, p.dilation.width, outputPadding: outputPadding.width)
        var y = [Double](repeating: 0, count: n * cout * oh * ow)
        for ni in 0..<n { for co in 0..<cout { for i in 0..<(oh * ow) {
            y[(ni * cout + co) * oh * ow + i] = b?[co] ?? 0
        } } }
        for ni in 0..<n { for ci in 0..<cin { for iy in 0..<h { for ix in 0..<wd {
            let value = x[((ni * cin + ci) * h + iy) * wd + ix]
            for co in 0..<cout { for ky in 0..<kh { for kx in 0..<kw {
                let oy = iy * p.stride.height - p.padding.height + ky * p.dilation.height
                let ox = ix * p.stride.width - p.padding.width + kx * p.dilation.width
                guard oy >= 0, oy < oh, ox >= 0, ox < ow else { continue }
                y[((ni * cout + co) * oh + oy) * ow + ox] += value * w[((ci * cout + co) * kh + ky) * kw + kx]
            } } }
        } } } }
        return ([n, cout, oh, ow], y)
    }

    /// F.unfold: cols[n, (c·KH + kh)·KW + kw, oh·OW + ow] = x[n, c, ih, iw] or 0 in the padding.
    static func unfold(_ x: Tensor, kernel: Size2D, _ p: Params) -> [Float] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = outputLength(h, kernel.height, p.stride.height, p.padding.height, p.dilation.height)
        let ow = outputLength(wd, kernel.width, p.stride.width, p.padding.width, p.dilation.width)
        let rows = c * kernel.height * kernel.width
        var cols = [Float](repeating: 0, count: n * rows * oh * ow)
        for ni in 0..<n { for ci in 0..<c { for ky in 0..<kernel.height { for kx in 0..<kernel.width {
            let row = (ci * kernel.height + ky) * kernel.width + kx
            for oy in 0..<oh { for ox in 0..<ow {
                let iy = oy * p.stride.height - p.padding.height + ky * p.dilation.height
                let ix = ox * p.stride.width - p.padding.width + kx * p.dilation.width
                guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                cols[(ni * rows + row) * oh * ow + oy * ow + ox] = x.scalars[((ni * c + ci) * h + iy) * wd + ix]
            } }
        } } } }
        return cols
    }

    /// Checks a layer's three gradients against central differences of a float64 loss at a
    /// few random coordinates each. `loss(x, w, b)` is Σ forward(x, w, b) ⊙ r.
    static func checkGradients(_ gradients: ConvGradients, x: Tensor, w: Tensor, b: Tensor, samples: Int = 4,
                               using generator: inout SeededGenerator, context: String,
                               sourceLocation: SourceLocation = #_sourceLocation,
                               loss: ([Double], [Double], [Double]) -> Double) {
        let xs = x.scalars.map(Double.init), ws = w.scalars.map(Double.init), bs = b.scalars.map(Double.init)
        func check(_ name: String, _ values: [Float], _ gradient: [Float], _ evaluate: ([Double]) -> Double) {
            let scale = max(gradient.map { abs(Double($0)) }.max() ?? 0, 1)
            for _ in 0..<samples {
                let index = Int.random(in: 0..<values.count, using: &generator)
                let numeric = finiteDifference(values, index: index, loss: evaluate)
                #expect(abs(numeric - Double(gradient[index])) <= 1e-4 * scale,
                        "\(name)[\(index)]: numeric \(numeric), analytic \(gradient[index]); \(context)",
                        sourceLocation: sourceLocation)
            }
        }
        check("input", x.scalars, gradients.input.scalars) { loss($0, ws, bs) }
        check("weight", w.scalars, gradients.weight.scalars) { loss(xs, $0, bs) }
        check("bias", b.scalars, gradients.bias.scalars) { loss(xs, ws, $0) }
    }

    /// Central finite difference of `loss` along coordinate `index` of `values`, in float64.
    static func finiteDifference(_ values: [Float], index: Int, step: Double = 1e-3, loss: ([Double]) -> Double) -> Double {
        var plus = values.map(Double.init), minus = plus
        plus[index] += step
        minus[index] -= step
        return (loss(plus) - loss(minus)) / (2 * step)
    }
}

/// A random geometry for a convolution-like op, small enough for the float64 references.
struct RandomGeometry: CustomStringConvertible {
    var batch, channels, height, width, filters: Int
    var kernel: Size2D
    var params: Reference.Params

    static func draw(_ g: inout SeededGenerator) -> RandomGeometry {
        while true {
            let kernel = Size2D(height: Int.random(in: 1...4, using: &g), width: Int.random(in: 1...4, using: &g))
            let params = Reference.Params(
                stride: Size2D(height: Int.random(in: 1...3, using: &g), width: Int.random(in: 1...3, using: &g)),
                padding: Size2D(height: Int.random(in: 0...2, using: &g), width: Int.random(in: 0...2, using: &g)),
                dilation: Size2D(height: Int.random(in: 1...2, using: &g), width: Int.random(in: 1...2, using: &g)))
            let geometry = RandomGeometry(
                batch: Int.random(in: 1...3, using: &g), channels: Int.random(in: 1...4, using: &g),
                height: Int.random(in: 1...9, using: &g), width: Int.random(in: 1...9, using: &g),
                filters: Int.random(in: 1...4, using: &g), kernel: kernel, params: params)
            let extentH = params.dilation.height * (kernel.height - 1) + 1
            let extentW = params.dilation.width * (kernel.width - 1) + 1
            if extentH <= geometry.height + 2 * params.padding.height, extentW <= geometry.width + 2 * params.padding.width {
                return geometry
            }
        }
    }

    var inputShape: [Int] { [batch, channels, height, width] }
    var weightShape: [Int] { [filters, channels, kernel.height, kernel.width] }
    var description: String {
        "x\(inputShape) w\(weightShape) stride \(params.stride) padding \(params.padding) dilation \(params.dilation)"
    }
}
