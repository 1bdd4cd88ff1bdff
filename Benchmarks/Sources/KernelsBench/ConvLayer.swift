import ArgumentParser
import Kernels

/// One convolution layer to benchmark: input `[N, C, H, W]`, weight `[F, C, KH, KW]`, and
/// the same stride, padding and dilation on both axes.
///
/// On the command line a layer is `N,C,H,W,F,KH,KW,stride,padding,dilation` (dilation may be
/// left off), the format `--json` prints in each convolution record's `shape`.
struct ConvLayer: Sendable, Hashable {
    var name: String
    var batch: Int
    var channels: Int
    var height: Int
    var width: Int
    var filters: Int
    var kernelHeight: Int
    var kernelWidth: Int
    var stride: Int
    var padding: Int
    var dilation: Int

    /// The layers of DESIGN.md, for which PyTorch timings on this machine are known.
    static let table: [ConvLayer] = [
        ConvLayer(name: "dlfs-simpleconv", 100, 1, 28, 28, filters: 30, kernel: 5, stride: 1, padding: 0),
        ConvLayer(name: "cifar-64", 64, 64, 32, 32, filters: 64, kernel: 3, stride: 1, padding: 1),
        ConvLayer(name: "resnet-c2", 8, 64, 56, 56, filters: 64, kernel: 3, stride: 1, padding: 1),
        ConvLayer(name: "resnet-c3s2", 8, 64, 56, 56, filters: 128, kernel: 3, stride: 2, padding: 1),
        ConvLayer(name: "resnet-c4", 8, 256, 14, 14, filters: 256, kernel: 3, stride: 1, padding: 1),
        ConvLayer(name: "resnet-1x1", 8, 256, 56, 56, filters: 64, kernel: 1, stride: 1, padding: 0),
    ]

    init(name: String, _ batch: Int, _ channels: Int, _ height: Int, _ width: Int,
         filters: Int, kernel: Int, stride: Int, padding: Int, dilation: Int = 1) {
        self.init(name: name, batch: batch, channels: channels, height: height, width: width,
                  filters: filters, kernelHeight: kernel, kernelWidth: kernel,
                  stride: stride, padding: padding, dilation: dilation)
    }

    init(name: String, batch: Int, channels: Int, height: Int, width: Int, filters: Int,
         kernelHeight: Int, kernelWidth: Int, stride: Int, padding: Int, dilation: Int) {
        self.name = name
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.filters = filters
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
    }

    /// `N,C,H,W,F,KH,KW,stride,padding,dilation`, the command-line format.
    var shape: String {
        [batch, channels, height, width, filters, kernelHeight, kernelWidth, stride, padding, dilation]
            .map(String.init).joined(separator: ",")
    }

    /// `N,C,H,W → F,KHxKW,s,p,d` for tables.
    var summary: String {
        let kernel = kernelHeight == kernelWidth ? "\(kernelHeight)" : "\(kernelHeight)x\(kernelWidth)"
        let dilated = dilation == 1 ? "" : ",d\(dilation)"
        return "\(batch),\(channels),\(height),\(width)→\(filters),\(kernel),s\(stride),p\(padding)\(dilated)"
    }

    /// The same layer on a batch of one image, for the seconds-long `--quick` smoke run.
    var singleImage: ConvLayer {
        var layer = self
        layer.batch = 1
        return layer
    }

    var inputShape: [Int] { [batch, channels, height, width] }
    var weightShape: [Int] { [filters, channels, kernelHeight, kernelWidth] }

    /// Validated sizes (output size, column matrix), or the library's error for a bad layer.
    func geometry() throws -> ConvGeometry {
        try ConvGeometry(batch: batch, channels: channels, height: height, width: width,
                         kernel: Size2D(height: kernelHeight, width: kernelWidth),
                         stride: Size2D(stride), padding: Size2D(padding), dilation: Size2D(dilation))
    }

    func convolution() -> Conv2D {
        Conv2D(stride: Size2D(stride), padding: Size2D(padding), dilation: Size2D(dilation))
    }
}

extension ConvLayer {
    /// The floating-point operations of one pass (forward, backward-input or backward-weight),
    /// counting a multiply-add as two: `2·N·F·C·KH·KW·OH·OW`.
    func flopsPerPass(_ g: ConvGeometry) -> Double {
        2 * Double(batch) * Double(filters) * Double(g.columnRows) * Double(g.outputPlaneSize)
    }

    /// The per-image GEMM each pass runs: forward `F × OH·OW × C·KH·KW`, backward-input
    /// `C·KH·KW × OH·OW × F` (weight transposed) and backward-weight `F × C·KH·KW × OH·OW`
    /// (columns transposed).
    func gemmShapes(_ g: ConvGeometry) -> (forward: GEMMShape, inputGradient: GEMMShape, weightGradient: GEMMShape) {
        (GEMMShape(m: filters, n: g.outputPlaneSize, k: g.columnRows),
         GEMMShape(m: g.columnRows, n: g.outputPlaneSize, k: filters, transposeA: true),
         GEMMShape(m: filters, n: g.columnRows, k: g.outputPlaneSize, transposeB: true))
    }
}

extension ConvLayer: ExpressibleByArgument {
    init?(argument: String) {
        let fields = argument.split(separator: ",").map { Int($0.filter { !$0.isWhitespace }) }
        guard fields.count == 9 || fields.count == 10, fields.allSatisfy({ $0 != nil }) else { return nil }
        let v = fields.map { $0! }
        self.init(name: "custom(\(argument))", batch: v[0], channels: v[1], height: v[2], width: v[3],
                  filters: v[4], kernelHeight: v[5], kernelWidth: v[6], stride: v[7], padding: v[8],
                  dilation: v.count == 10 ? v[9] : 1)
        name = "custom-\(shape)"
    }
}
