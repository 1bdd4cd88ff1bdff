extension GEMM {
    /// Cache-blocked, packed, SIMD-vectorized pure-Swift matrix multiply (row-major):
    /// `C = alpha · op(A) · op(B) + beta · C`, the fallback and benchmark counterpart of
    /// ``openBLAS(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` with the same
    /// signature and BLAS semantics (beta = 0 overwrites C, NaN included; k = 0 gives beta · C).
    ///
    /// The structure is GotoBLAS/BLIS: `op(B)` is packed `kc × nc` at a time into slivers of
    /// ``SwiftBlockedGEMM/tileColumns`` columns, `op(A)` `mc × kc` at a time into slivers of
    /// ``SwiftBlockedGEMM/tileRows`` rows, so both transposes cost only a different packing
    /// loop; a register-blocked micro-kernel then multiplies one A sliver by one B sliver.
    /// Large products are split across the cores by columns (or rows, when C is tall), each
    /// core owning a disjoint block of C.
    ///
    /// ```swift
    /// GEMM.swiftBlocked(transposeA: false, transposeB: true, m: 64, n: 3136, k: 576, alpha: 1,
    ///                   a: weights, lda: 576, b: columns, ldb: 576, beta: 0, c: output, ldc: 3136)
    /// ```
    /// The default x86-64 build only has SSE2 (4-lane vectors, separate multiply and add);
    /// building with `-Xswiftc -target-cpu -Xswiftc haswell -Xswiftc -DKERNELS_AVX2` (swiftc 6.3
    /// rejects `x86-64-v3`) makes the micro-kernel use 8-lane fused multiply-adds, about 3× faster.
    ///
    /// - Complexity: O(m · n · k) time; O(mc · kc + kc · nc) scratch per thread.
    public static func swiftBlocked(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0, alpha != 0 else {
            scale(c, rows: m, columns: n, ldc: ldc, by: beta)
            return
        }
        let problem = SwiftBlockedGEMM.Problem(
            transposeA: transposeA, transposeB: transposeB, alpha: alpha,
            a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        // In Double, so the estimate cannot overflow for any sizes.
        let isLarge = Double(m) * Double(n) * Double(k) >= SwiftBlockedGEMM.minimumParallelWork
        guard isLarge, Parallel.coreCount > 1 else {
            problem.run(rows: 0..<m, columns: 0..<n, depth: k)
            return
        }
        // Each core takes whole tiles of one dimension, so the blocks of C are disjoint and the
        // other operand is packed once per core: cheap, since packing is O(size) while each
        // core's share of the arithmetic is O(size · its share of the split dimension).
        // `isLarge` already decided threading pays, so the work hint just clears Parallel's bar.
        if n >= m {
            let unit = SwiftBlockedGEMM.tileColumns
            let units = (n + unit - 1) / unit
            Parallel.forEach(units, workPerItem: Parallel.minimumParallelWork) { range in
                problem.run(rows: 0..<m, columns: (range.lowerBound * unit)..<min(n, range.upperBound * unit), depth: k)
            }
        } else {
            let unit = SwiftBlockedGEMM.tileRows
            let units = (m + unit - 1) / unit
            Parallel.forEach(units, workPerItem: Parallel.minimumParallelWork) { range in
                problem.run(rows: (range.lowerBound * unit)..<min(m, range.upperBound * unit), columns: 0..<n, depth: k)
            }
        }
    }
}

/// The blocking parameters, packing routines and micro-kernel behind ``GEMM/swiftBlocked(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
enum SwiftBlockedGEMM {
    #if KERNELS_AVX2
    /// One AVX register; the tile is 6 × 16, twelve accumulators out of sixteen registers.
    typealias Lane = SIMD8<Float>
    #else
    /// One SSE register, all the default x86-64 target guarantees; the tile is 6 × 8.
    typealias Lane = SIMD4<Float>
    #endif

    /// Rows of C one micro-kernel call produces (the height of a packed A sliver).
    static let tileRows = 6
    /// Columns of C one micro-kernel call produces: two lanes wide.
    static let tileColumns = 2 * Lane.scalarCount

    /// Depth of one packed block: a `depthBlock × tileColumns` B sliver stays in L1 while
    /// the A slivers stream past it.
    static let depthBlock = 256
    /// Rows of one packed A block (a multiple of `tileRows`): 96 × 256 floats is 96 KiB, well
    /// inside L2. KC ∈ {128…512} × MC ∈ {48…384} measured within noise of each other here.
    static let rowBlock = 96
    /// Columns of one packed B panel (a multiple of `tileColumns`): 2 MiB at KC = 256.
    static let columnBlock = 2048

    /// Below this many multiply-adds, waking a second thread costs more than it saves.
    static let minimumParallelWork = Double(1 << 18)

    /// One call's operands; `run` multiplies any sub-block of it.
    struct Problem {
        let transposeA: Bool
        let transposeB: Bool
        let alpha: Float
        let a: UnsafePointer<Float>
        let lda: Int
        let b: UnsafePointer<Float>
        let ldb: Int
        let beta: Float
        let c: UnsafeMutablePointer<Float>
        let ldc: Int

        /// `C[rows, columns] = alpha · op(A)[rows, depth] · op(B)[depth, columns] + beta · C[rows, columns]`.
        func run(rows: Range<Int>, columns: Range<Int>, depth: Int) {
            guard !rows.isEmpty, !columns.isEmpty else { return }
            let depthBlock = min(SwiftBlockedGEMM.depthBlock, depth)
            let rowBlock = min(SwiftBlockedGEMM.rowBlock, roundUp(rows.count, to: tileRows))
            let columnBlock = min(SwiftBlockedGEMM.columnBlock, roundUp(columns.count, to: tileColumns))
            // 64-byte alignment keeps every packed lane load aligned and on one cache line.
            let packedACount = rowBlock * depthBlock
            let packedA = UnsafeMutableRawPointer.allocate(
                byteCount: packedACount * MemoryLayout<Float>.stride, alignment: 64
            ).bindMemory(to: Float.self, capacity: packedACount)
            let packedB = UnsafeMutableRawPointer.allocate(
                byteCount: depthBlock * columnBlock * MemoryLayout<Float>.stride, alignment: 64
            ).bindMemory(to: Float.self, capacity: depthBlock * columnBlock)
            defer {
                packedA.deallocate()
                packedB.deallocate()
            }

            var columnStart = columns.lowerBound
            while columnStart < columns.upperBound {
                let columnCount = min(columnBlock, columns.upperBound - columnStart)
                var depthStart = 0
                while depthStart < depth {
                    let depthCount = min(depthBlock, depth - depthStart)
                    // Only the first depth block sees the caller's beta; later ones add to it.
                    let blockBeta: Float = depthStart == 0 ? beta : 1
                    packB(into: packedB, depth: depthStart..<(depthStart + depthCount),
                          columns: columnStart..<(columnStart + columnCount))
                    var rowStart = rows.lowerBound
                    while rowStart < rows.upperBound {
                        let rowCount = min(rowBlock, rows.upperBound - rowStart)
                        packA(into: packedA, rows: rowStart..<(rowStart + rowCount),
                              depth: depthStart..<(depthStart + depthCount))
                        multiplyPacked(packedA, packedB, rowCount: rowCount, columnCount: columnCount,
                                       depth: depthCount, beta: blockBeta,
                                       c: c + rowStart * ldc + columnStart)
                        rowStart += rowCount
                    }
                    depthStart += depthCount
                }
                columnStart += columnCount
            }
        }

        /// Copies `op(B)[depth, columns]` as consecutive `depth × tileColumns` slivers.
        func packB(into packed: UnsafeMutablePointer<Float>, depth: Range<Int>, columns: Range<Int>) {
            // op(B)[p, j] is b[j · ldb + p] when transposed, else b[p · ldb + j].
            packSlivers(into: packed,
                        source: transposeB ? b + columns.lowerBound * ldb + depth.lowerBound : b + depth.lowerBound * ldb + columns.lowerBound,
                        outerCount: columns.count, depthCount: depth.count,
                        outerStride: transposeB ? ldb : 1, depthStride: transposeB ? 1 : ldb, sliverWidth: tileColumns)
        }

        /// Copies `op(A)[rows, depth]` as consecutive `depth × tileRows` slivers.
        func packA(into packed: UnsafeMutablePointer<Float>, rows: Range<Int>, depth: Range<Int>) {
            // op(A)[i, p] is a[p · lda + i] when transposed, else a[i · lda + p].
            packSlivers(into: packed,
                        source: transposeA ? a + depth.lowerBound * lda + rows.lowerBound : a + rows.lowerBound * lda + depth.lowerBound,
                        outerCount: rows.count, depthCount: depth.count,
                        outerStride: transposeA ? 1 : lda, depthStride: transposeA ? lda : 1, sliverWidth: tileRows)
        }

        /// Runs the micro-kernel over every (A sliver, B sliver) pair of one packed block.
        func multiplyPacked(
            _ packedA: UnsafePointer<Float>, _ packedB: UnsafePointer<Float>,
            rowCount: Int, columnCount: Int, depth: Int, beta: Float, c: UnsafeMutablePointer<Float>
        ) {
            var columnStart = 0
            while columnStart < columnCount {
                let tileWidth = min(tileColumns, columnCount - columnStart)
                let bSliver = packedB + columnStart * depth
                var rowStart = 0
                while rowStart < rowCount {
                    let tileHeight = min(tileRows, rowCount - rowStart)
                    let tile = multiplyTile(depth: depth, a: packedA + rowStart * depth, b: bSliver)
                    let destination = c + rowStart * ldc + columnStart
                    if tileHeight == tileRows && tileWidth == tileColumns {
                        tile.store(into: destination, ldc: ldc, alpha: alpha, beta: beta)
                    } else {
                        tile.storePartial(into: destination, ldc: ldc, rows: tileHeight, columns: tileWidth,
                                          alpha: alpha, beta: beta)
                    }
                    rowStart += tileRows
                }
                columnStart += tileColumns
            }
        }
    }

    @inline(__always)
    static func roundUp(_ value: Int, to multiple: Int) -> Int {
        (value + multiple - 1) / multiple * multiple
    }

    /// `accumulator + x · y`: one fused instruction where the target has FMA. Without it the
    /// fused form would become a libm `fmaf` call per lane, so the default build multiplies
    /// and adds separately.
    @inline(__always)
    static func multiplyAdd(_ accumulator: Lane, _ x: Lane, _ y: Lane) -> Lane {
        #if KERNELS_AVX2
        accumulator.addingProduct(x, y)
        #else
        accumulator + x * y
        #endif
    }

    /// The register tile: each of the six rows of C is two lanes wide. Twelve named values
    /// rather than an array, so the optimizer keeps them all in registers across the loop.
    struct Tile {
        var row0 = (Lane.zero, Lane.zero)
        var row1 = (Lane.zero, Lane.zero)
        var row2 = (Lane.zero, Lane.zero)
        var row3 = (Lane.zero, Lane.zero)
        var row4 = (Lane.zero, Lane.zero)
        var row5 = (Lane.zero, Lane.zero)

        @inline(__always)
        func row(_ index: Int) -> (Lane, Lane) {
            switch index {
            case 0: row0
            case 1: row1
            case 2: row2
            case 3: row3
            case 4: row4
            default: row5
            }
        }

        /// `C = alpha · tile + beta · C` on a full tile; beta = 0 never reads C.
        @inline(__always)
        func store(into c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
            let scale = Lane(repeating: alpha)
            let betaLane = Lane(repeating: beta)
            let laneBytes = MemoryLayout<Lane>.size
            for index in 0..<tileRows {
                let (left, right) = row(index)
                let line = UnsafeMutableRawPointer(c + index * ldc)
                var newLeft = scale * left
                var newRight = scale * right
                if beta != 0 {
                    newLeft += betaLane * line.loadUnaligned(as: Lane.self)
                    newRight += betaLane * line.loadUnaligned(fromByteOffset: laneBytes, as: Lane.self)
                }
                line.storeBytes(of: newLeft, as: Lane.self)
                line.storeBytes(of: newRight, toByteOffset: laneBytes, as: Lane.self)
            }
        }

        /// The edge-tile version of `store`: only the top-left `rows × columns` reach C.
        func storePartial(
            into c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, alpha: Float, beta: Float
        ) {
            for index in 0..<rows {
                let (left, right) = row(index)
                let line = c + index * ldc
                for column in 0..<columns {
                    let value = alpha * (column < Lane.scalarCount ? left[column] : right[column - Lane.scalarCount])
                    line[column] = beta == 0 ? value : value + beta * line[column]
                }
            }
        }
    }

    /// Sum over p of (A sliver column p) ⊗ (B sliver row p): per step, two lane loads of B,
    /// six broadcasts of A and twelve multiply-adds. The twelve accumulators plus two B lanes
    /// and one broadcast fill fifteen of the sixteen vector registers, so the loop body is kept
    /// this plain: small rewrites have made the register allocator spill an accumulator, which
    /// halves the speed (check the disassembly after editing).
    @inline(__always)
    static func multiplyTile(depth: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>) -> Tile {
        var tile = Tile()
        var aColumn = a
        var bRow = UnsafeRawPointer(b)
        let laneBytes = MemoryLayout<Lane>.size
        for _ in 0..<depth {
            let left = bRow.load(as: Lane.self)
            let right = bRow.load(fromByteOffset: laneBytes, as: Lane.self)
            var broadcast = Lane(repeating: aColumn[0])
            tile.row0 = (multiplyAdd(tile.row0.0, broadcast, left), multiplyAdd(tile.row0.1, broadcast, right))
            broadcast = Lane(repeating: aColumn[1])
            tile.row1 = (multiplyAdd(tile.row1.0, broadcast, left), multiplyAdd(tile.row1.1, broadcast, right))
            broadcast = Lane(repeating: aColumn[2])
            tile.row2 = (multiplyAdd(tile.row2.0, broadcast, left), multiplyAdd(tile.row2.1, broadcast, right))
            broadcast = Lane(repeating: aColumn[3])
            tile.row3 = (multiplyAdd(tile.row3.0, broadcast, left), multiplyAdd(tile.row3.1, broadcast, right))
            broadcast = Lane(repeating: aColumn[4])
            tile.row4 = (multiplyAdd(tile.row4.0, broadcast, left), multiplyAdd(tile.row4.1, broadcast, right))
            broadcast = Lane(repeating: aColumn[5])
            tile.row5 = (multiplyAdd(tile.row5.0, broadcast, left), multiplyAdd(tile.row5.1, broadcast, right))
            aColumn += tileRows
            bRow += 2 * laneBytes
        }
        return tile
    }
}

/// Packs a `depthCount × outerCount` block for the micro-kernel: consecutive slivers of
/// `sliverWidth` outer indices, each `depthCount × sliverWidth` with one depth step contiguous,
/// the last sliver zero-padded so the kernel never branches. Element (outer `o`, depth `p`) is
/// `source[o · outerStride + p · depthStride]`; one of the two strides is 1, and the copy walks
/// the source in memory order either way (the same routine packs A's row slivers and B's
/// column slivers).
private func packSlivers(into packed: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>,
                         outerCount: Int, depthCount: Int, outerStride: Int, depthStride: Int, sliverWidth: Int) {
    let sliverCount = (outerCount + sliverWidth - 1) / sliverWidth
    let lastWidth = outerCount - (sliverCount - 1) * sliverWidth
    let sliverSize = depthCount * sliverWidth
    if outerStride == 1 {
        // Each depth step is a contiguous source run across all slivers: stream it.
        var line = source
        for p in 0..<depthCount {
            var destination = packed + p * sliverWidth
            for sliver in 0..<sliverCount {
                destination.update(from: line + sliver * sliverWidth, count: sliver == sliverCount - 1 ? lastWidth : sliverWidth)
                destination += sliverSize
            }
            line += depthStride
        }
    } else {
        // Each outer index is a contiguous source run along depth.
        for outer in 0..<outerCount {
            let line = source + outer * outerStride
            let destination = packed + (outer / sliverWidth) * sliverSize + outer % sliverWidth
            for p in 0..<depthCount { destination[p * sliverWidth] = line[p] }
        }
    }
    if lastWidth < sliverWidth {
        let lastSliver = packed + (sliverCount - 1) * sliverSize
        for p in 0..<depthCount { (lastSliver + p * sliverWidth + lastWidth).update(repeating: 0, count: sliverWidth - lastWidth) }
    }
}
