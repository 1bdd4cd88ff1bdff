import Testing
@testable import Kernels

/// Many tasks calling Kernels at once must each get exactly what a lone caller gets: the
/// layers keep no shared mutable state, scratch memory is per call, and Kernels' own threads
/// and OpenBLAS's pool are safe to enter from several threads.
@Suite struct ConcurrencyTests {
    @Test func publicTypesAreSendable() {
        // Fails to compile, rather than at run time, if one of them loses Sendable.
        requireSendable(Tensor.self)
        requireSendable(Size2D.self)
        requireSendable(KernelError.self)
        requireSendable(ConvGeometry.self)
        requireSendable(ConvGradients.self)
        requireSendable(Conv2D.self)
        requireSendable(ConvTranspose2D.self)
        requireSendable(MaxPool2D.self)
        requireSendable(MaxPool2D.Result.self)
        requireSendable(Im2Col.self)
        requireSendable(GEMMBackend.self)
    }

    /// One unit of work: a layer, its input, and every result it produces, as raw bits.
    struct Job: Sendable, CustomStringConvertible {
        enum Kind: Sendable {
            case convolution(Conv2D, weight: Tensor, bias: Tensor)
            case transposedConvolution(ConvTranspose2D, weight: Tensor, bias: Tensor)
            case pooling(MaxPool2D)
            case unfold(Im2Col)
        }
        let kind: Kind
        let input: Tensor
        let description: String

        /// Runs the forward pass and its backward pass (with the forward output standing in
        /// for the upstream gradient) and returns every result's bits.
        func run() throws -> [[UInt32]] {
            switch kind {
            case let .convolution(conv, weight, bias):
                let y = try conv.forward(input, weight: weight, bias: bias)
                let g = try conv.backward(y, input: input, weight: weight)
                return [bitPatterns(y), bitPatterns(g.input), bitPatterns(g.weight), bitPatterns(g.bias)]
            case let .transposedConvolution(up, weight, bias):
                let z = try up.forward(input, weight: weight, bias: bias)
                let g = try up.backward(z, input: input, weight: weight)
                return [bitPatterns(z), bitPatterns(g.input), bitPatterns(g.weight), bitPatterns(g.bias)]
            case let .pooling(pool):
                let p = try pool.forward(input)
                let dx = try pool.backward(p.output, indices: p.indices, inputShape: input.shape)
                return [bitPatterns(p.output), p.indices.map { UInt32(truncatingIfNeeded: $0) }, bitPatterns(dx)]
            case let .unfold(unfold):
                let columns = try unfold.columns(input)
                return [bitPatterns(columns), bitPatterns(try unfold.image(columns, shape: input.shape))]
            }
        }
    }

    /// Shared weights per layer, different inputs and shapes per job; the shapes are large
    /// enough that im2col/col2im and pooling split across cores and OpenBLAS uses its threads.
    static func jobs() -> [Job] {
        var generator = SeededGenerator(seed: 2024)
        let convWeight = Tensor.random([16, 16, 3, 3], using: &generator)
        let convBias = Tensor.random([16], using: &generator)
        let pointwiseWeight = Tensor.random([24, 16, 1, 1], using: &generator)
        // 5×5 stride 1 with 16 filters: all three passes run the direct AVX2 kernel.
        let largeWeight = Tensor.random([16, 16, 5, 5], using: &generator)
        let upWeight = Tensor.random([16, 8, 3, 3], using: &generator)
        let upBias = Tensor.random([8], using: &generator)
        var jobs: [Job] = []
        for (index, shape) in [[2, 16, 32, 32], [1, 16, 27, 41], [3, 16, 20, 20]].enumerated() {
            func input() -> Tensor { Tensor.random(shape, using: &generator) }
            jobs.append(Job(kind: .convolution(Conv2D(padding: 1), weight: convWeight, bias: convBias),
                            input: input(), description: "conv 3×3 \(shape)"))
            jobs.append(Job(kind: .convolution(Conv2D(stride: 2, padding: 2, dilation: 2), weight: convWeight, bias: convBias),
                            input: input(), description: "conv 3×3 s2 d2 \(shape)"))
            jobs.append(Job(kind: .convolution(Conv2D(padding: 2), weight: largeWeight, bias: convBias),
                            input: input(), description: "conv 5×5 \(shape)"))
            jobs.append(Job(kind: .convolution(Conv2D(), weight: pointwiseWeight, bias: Tensor.random([24], using: &generator)),
                            input: input(), description: "conv 1×1 \(shape)"))
            jobs.append(Job(kind: .transposedConvolution(ConvTranspose2D(stride: 2, padding: 1, outputPadding: Size2D(index % 2)),
                                                         weight: upWeight, bias: upBias),
                            input: input(), description: "transposed 3×3 s2 \(shape)"))
            jobs.append(Job(kind: .pooling(MaxPool2D(kernel: 3, stride: 2, padding: 1)), input: input(), description: "pool 3×3 s2 \(shape)"))
            jobs.append(Job(kind: .pooling(MaxPool2D(kernel: 2)), input: input(), description: "pool 2×2 \(shape)"))
            jobs.append(Job(kind: .unfold(Im2Col(kernel: 3, stride: Size2D(height: 1, width: 2), padding: 1)),
                            input: input(), description: "im2col 3×3 \(shape)"))
        }
        return jobs
    }

    @Test func concurrentCallsMatchSerialCallsBitForBit() async throws {
        let jobs = Self.jobs()
        let serial = try jobs.map { try $0.run() }
        // Every job several times over, interleaved, so the same shared weights and the same
        // shapes are in flight from different tasks at once.
        let repetitions = 3
        let concurrent = try await withThrowingTaskGroup(of: (Int, [[UInt32]]).self) { group in
            for round in 0..<repetitions {
                for (index, job) in jobs.enumerated() {
                    group.addTask { (round * jobs.count + index, try job.run()) }
                }
            }
            var results = [[[UInt32]]](repeating: [], count: repetitions * jobs.count)
            for try await (slot, result) in group { results[slot] = result }
            return results
        }
        for (slot, result) in concurrent.enumerated() {
            let index = slot % jobs.count
            // A Bool, so a failure names the job instead of printing every bit of it.
            let matches = result == serial[index]
            #expect(matches, "\(jobs[index]) differs when run concurrently (round \(slot / jobs.count))")
        }
    }

    /// What the test above catches only when calls happen to overlap, made certain: another
    /// call's single-threaded OpenBLAS scope (which lowers OpenBLAS's process-wide thread count)
    /// must not change a single bit of this call's results. OpenBLAS on one and on two threads
    /// rounds differently for some of these shapes, so this fails if any pass leaves its GEMM
    /// to OpenBLAS's own threading.
    @Test func resultsDoNotDependOnOpenBLASThreadCount() throws {
        let jobs = Self.jobs()
        let outside = try jobs.map { try $0.run() }
        let inside = try GEMM.withSingleThreadedOpenBLAS { try jobs.map { try $0.run() } }
        for (index, job) in jobs.enumerated() {
            let matches = inside[index] == outside[index]
            #expect(matches, "\(job) differs with OpenBLAS on one thread")
        }
    }

    @Test func concurrentInvalidCallsThrowWithoutDisturbingValidOnes() async throws {
        // Failing validation must not leave anything behind that a neighbouring call could see.
        var generator = SeededGenerator(seed: 7)
        let x = Tensor.random([2, 8, 16, 16], using: &generator)
        let w = Tensor.random([8, 8, 3, 3], using: &generator)
        let expected = bitPatterns(try Conv2D(padding: 1).forward(x, weight: w))
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for task in 0..<32 {
                group.addTask {
                    if task.isMultiple(of: 2) {
                        return (try? Conv2D(padding: 1).forward(x, weight: w)).map(bitPatterns) == expected
                    }
                    do {
                        _ = try Conv2D(stride: 0, padding: 1).forward(x, weight: w)
                        return false
                    } catch let error as KernelError {
                        return error.argument == "stride"
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.count == 32 && outcomes.allSatisfy { $0 })
    }
}
