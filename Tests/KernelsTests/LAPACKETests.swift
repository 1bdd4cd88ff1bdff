import CBLAS
import Testing

/// Proves the LAPACKE half of the CBLAS system module links and runs, not just CBLAS.
@Suite("LAPACKE")
struct LAPACKETests {
    /// 2x + y − z = 8, −3x − y + 2z = −11, −2x + y + 2z = −3 has the solution (2, 3, −1).
    @Test func solvesThreeByThreeSystem() {
        var matrix: [Float] = [2, 1, -1,
                               -3, -1, 2,
                               -2, 1, 2]
        var rightHandSide: [Float] = [8, -11, -3]
        // `lapack_int` is a C macro (int32_t in the LP64 build), so Swift sees only `Int32`.
        var pivots = [Int32](repeating: 0, count: 3)
        let status = LAPACKE_sgesv(LAPACK_ROW_MAJOR, 3, 1, &matrix, 3, &pivots, &rightHandSide, 1)
        #expect(status == 0)
        let solution: [Float] = [2, 3, -1]
        for (computed, exact) in zip(rightHandSide, solution) {
            #expect(abs(computed - exact) <= 1e-5, "\(rightHandSide)")
        }
    }
}
