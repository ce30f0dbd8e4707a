//! Measures the CPU backend's matrix-multiplication rate (GFLOP/s) at a given shape, for the training
//! benchmark's "fraction of GEMM rate": `gemm_rate [M K N] [REPEATS]` prints one JSON line.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|arg| arg.parse().expect("numbers")).collect();
    let (m, k, n) = match args[..] {
        [m, k, n, ..] => (m, k, n),
        _ => (1024, 1024, 1024),
    };
    let repeats = args.get(3).copied().unwrap_or(20);
    let device = Device::flex();
    let a = Tensor::<2>::random([m, k], Distribution::Default, &device);
    let b = Tensor::<2>::random([k, n], Distribution::Default, &device);
    let _: f32 = a.clone().matmul(b.clone()).sum().into_scalar(); // warm-up
    let started = Instant::now();
    for _ in 0..repeats {
        let _: f32 = a.clone().matmul(b.clone()).slice([0..1, 0..1]).sum().into_scalar();
    }
    let seconds = started.elapsed().as_secs_f64();
    let gflops = 2.0 * (m * k * n * repeats) as f64 / seconds / 1e9;
    println!("{{\"m\": {m}, \"k\": {k}, \"n\": {n}, \"gflop_per_s\": {gflops:.1}}}");
}
