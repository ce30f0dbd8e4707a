//! Single-precision matrix products on the CPU, for the kernels that run outside burn's operations
//! ([`super::gru_kernel`], [`super::output_loss`]).
//!
//! Products come from OpenBLAS when the machine has it, loaded at run time so that the binary still starts
//! on a machine without it, and from the `gemm` crate (what burn's CPU backend uses) otherwise. On the
//! 2-core machine this project is developed on, OpenBLAS multiplies at about twice the `gemm` crate's rate
//! (103 against 49 GFLOP/s at the output layer's shape), and the output layer and the recurrences are most
//! of training. `STORYTOOL_BLAS=builtin` forces the `gemm` crate (for comparisons); `STORYTOOL_BLAS=PATH`
//! loads that library instead of searching the usual names.

use std::ffi::c_int;
use std::sync::LazyLock;

/// A row-major view's strides: `(row, column)` in elements. One of them must be 1 for OpenBLAS; the
/// `gemm` crate takes any.
pub type Strides = (usize, usize);

/// `cblas_sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
type CblasSgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

const ROW_MAJOR: c_int = 101;
const NO_TRANSPOSE: c_int = 111;
const TRANSPOSE: c_int = 112;

/// OpenBLAS's `cblas_sgemm`, with the library kept loaded for the life of the process.
struct OpenBlas {
    sgemm: CblasSgemm,
    _library: libloading::Library,
}

static OPENBLAS: LazyLock<Option<OpenBlas>> = LazyLock::new(load_openblas);

fn load_openblas() -> Option<OpenBlas> {
    let setting = std::env::var("STORYTOOL_BLAS").unwrap_or_default();
    let candidates: Vec<String> = match setting.as_str() {
        "builtin" => return None,
        "" => ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib", "libopenblas.dll"].map(String::from).to_vec(),
        path => vec![path.to_string()],
    };
    candidates.iter().find_map(|name| {
        // SAFETY: loading a BLAS library runs its initialisers, which only set up its thread pool.
        let library = unsafe { libloading::Library::new(name) }.ok()?;
        // SAFETY: `cblas_sgemm` has this signature in every CBLAS.
        let sgemm = unsafe { library.get::<CblasSgemm>(b"cblas_sgemm\0") }.ok().map(|symbol| *symbol)?;
        Some(OpenBlas { sgemm, _library: library })
    })
}

/// Which library computes the products: `"openblas"` or `"gemm"` (for benchmark reports).
pub fn provider() -> &'static str {
    if OPENBLAS.is_some() { "openblas" } else { "gemm" }
}

/// `dst (m x n, row stride dst_row) = [dst +] lhs (m x k) · rhs (k x n)`: with `accumulate` the product is
/// added to what `dst` holds, otherwise it replaces it.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    shape: (usize, usize, usize),
    dst: &mut [f32],
    dst_row: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: Strides,
    rhs: &[f32],
    rhs_strides: Strides,
) {
    multiply(OPENBLAS.as_ref(), shape, dst, dst_row, accumulate, lhs, lhs_strides, rhs, rhs_strides);
}

/// [`sgemm`] with OpenBLAS when given, the `gemm` crate otherwise.
#[allow(clippy::too_many_arguments)]
fn multiply(
    openblas: Option<&OpenBlas>,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_row: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: Strides,
    rhs: &[f32],
    rhs_strides: Strides,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst_row >= n && dst.len() >= (m - 1) * dst_row + n, "destination too short");
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_row).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    assert!(lhs.len() > (m - 1) * lhs_strides.0 + (k - 1) * lhs_strides.1, "left operand too short");
    assert!(rhs.len() > (k - 1) * rhs_strides.0 + (n - 1) * rhs_strides.1, "right operand too short");
    if let Some(openblas) = openblas
        && let Some((transpose_lhs, lda)) = cblas_layout(lhs_strides, k)
        && let Some((transpose_rhs, ldb)) = cblas_layout(rhs_strides, n)
    {
        // SAFETY: the asserts above keep every access inside the slices, and the layouts were checked.
        unsafe {
            (openblas.sgemm)(
                ROW_MAJOR,
                transpose_lhs,
                transpose_rhs,
                m as c_int,
                n as c_int,
                k as c_int,
                1.0,
                lhs.as_ptr(),
                lda as c_int,
                rhs.as_ptr(),
                ldb as c_int,
                if accumulate { 1.0 } else { 0.0 },
                dst.as_mut_ptr(),
                dst_row as c_int,
            );
        }
        return;
    }
    let parallelism = if m * n * k >= 1 << 21 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: as above; `dst` is borrowed mutably, so it does not alias the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A row-major operand with `columns` columns as CBLAS sees it: plain (unit column stride) or transposed
/// (unit row stride), with its leading dimension; `None` when neither stride is 1.
fn cblas_layout((row, column): Strides, columns: usize) -> Option<(c_int, usize)> {
    if column == 1 && row >= columns {
        Some((NO_TRANSPOSE, row.max(1)))
    } else if row == 1 {
        Some((TRANSPOSE, column.max(1)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_in_every_layout_match_the_definition() {
        let (m, n, k) = (3, 4, 5);
        let lhs: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect(); // row-major m x k
        let rhs: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.25).collect(); // row-major k x n
        let expected: Vec<f32> =
            (0..m * n).map(|at| (0..k).map(|p| lhs[(at / n) * k + p] * rhs[p * n + at % n]).sum()).collect();
        // The same operands stored transposed (column-major), read with swapped strides.
        let lhs_t: Vec<f32> = (0..k * m).map(|at| lhs[(at % m) * k + at / m]).collect();
        let rhs_t: Vec<f32> = (0..n * k).map(|at| rhs[(at % k) * n + at / k]).collect();
        // The `gemm` crate always; OpenBLAS too where the machine has it (CI installs it).
        for openblas in std::iter::once(None).chain(OPENBLAS.as_ref().map(Some)) {
            for (lhs, lhs_strides) in [(&lhs, (k, 1)), (&lhs_t, (1, m))] {
                for (rhs, rhs_strides) in [(&rhs, (n, 1)), (&rhs_t, (1, k))] {
                    let mut dst = vec![1.0; m * n];
                    multiply(openblas, (m, n, k), &mut dst, n, false, lhs, lhs_strides, rhs, rhs_strides);
                    assert_eq!(dst, expected);
                    multiply(openblas, (m, n, k), &mut dst, n, true, lhs, lhs_strides, rhs, rhs_strides);
                    let doubled: Vec<f32> = expected.iter().map(|value| 2.0 * value).collect();
                    assert_eq!(dst, doubled, "accumulating adds the product");
                }
            }
        }
    }
}
