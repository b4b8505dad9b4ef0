//! An unmodified CUDA client on `cudarc`'s safe API: a context on device 0,
//! the default stream and two more, copies both ways, `vector_add`,
//! `saxpy` and `scale_inplace` from `samples/cuda/kernels.ptx` on several
//! streams, events with elapsed time, synchronisation. It prints only
//! deterministic results (sums and checksums, never timings), so that runs
//! on different drivers compare textually.
//!
//! Usage: `cudarc-client [KERNELS.ptx]` (or `AVA_CUDA_PTX`); the default is
//! the repository's `samples/cuda/kernels.ptx`.

use std::error::Error;
use std::path::PathBuf;

use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg, sys};
use cudarc::nvrtc::Ptx;

const N: usize = 4096;

/// FNV-1a over the values' bit patterns.
fn checksum(v: &[f32]) -> u64 {
    v.iter()
        .flat_map(|x| x.to_bits().to_le_bytes())
        .fold(0xcbf29ce484222325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
}

fn report(name: &str, v: &[f32]) {
    let sum: f64 = v.iter().map(|x| *x as f64).sum();
    println!(
        "{name}: n={} sum={sum:.3} first={:?} last={:?} checksum={:016x}",
        v.len(),
        v[0],
        v[v.len() - 1],
        checksum(v)
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let ptx_path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("AVA_CUDA_PTX").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cuda/kernels.ptx"));

    let ctx = CudaContext::new(0)?;
    println!("device: {}", ctx.name()?);
    let (major, minor) = ctx.compute_capability()?;
    println!("compute capability: {major}.{minor}");

    let ptx = std::fs::read_to_string(&ptx_path)?;
    let module = ctx.load_module(Ptx::from_src(ptx))?;
    let vector_add = module.load_function("vector_add")?;
    let saxpy = module.load_function("saxpy")?;
    let scale = module.load_function("scale_inplace")?;

    let a: Vec<f32> = (0..N).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..N).map(|i| (N - i) as f32 * 0.25).collect();
    let n = N as u32;
    let cfg = LaunchConfig::for_num_elems(n);

    // Default stream: c = a + b, timed with events.
    let stream = ctx.default_stream();
    let start = stream.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?;
    let d_a = stream.clone_htod(&a)?;
    let d_b = stream.clone_htod(&b)?;
    let mut d_c = stream.alloc_zeros::<f32>(N)?;
    let mut launch = stream.launch_builder(&vector_add);
    launch.arg(&d_a).arg(&d_b).arg(&mut d_c).arg(&n);
    // SAFETY: vector_add(const float*, const float*, float*, unsigned) over N elements.
    unsafe { launch.launch(cfg) }?;
    let end = stream.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?;
    end.synchronize()?;
    let elapsed = start.elapsed_ms(&end)?;
    println!("events: elapsed time measured: {}", elapsed >= 0.0);
    report("vector_add", &stream.clone_dtoh(&d_c)?);

    // Two more streams: saxpy on one, scale_inplace on the other, each on
    // its own copy of c, then joined into the default stream.
    let s1 = ctx.new_stream()?;
    let s2 = ctx.new_stream()?;
    s1.join(&stream)?;
    s2.join(&stream)?;
    let d_x = s1.clone_htod(&a)?;
    let mut d_y = s1.alloc_zeros::<f32>(N)?;
    s1.memcpy_dtod(&d_c, &mut d_y)?;
    let alpha = 2.0f32;
    let mut launch = s1.launch_builder(&saxpy);
    launch.arg(&alpha).arg(&d_x).arg(&mut d_y).arg(&n);
    // SAFETY: saxpy(float, const float*, float*, unsigned) over N elements.
    unsafe { launch.launch(cfg) }?;

    let mut d_z = s2.clone_htod(&b)?;
    let factor = 3.0f32;
    for _ in 0..2 {
        let mut launch = s2.launch_builder(&scale);
        launch.arg(&mut d_z).arg(&factor).arg(&n);
        // SAFETY: scale_inplace(float*, float, unsigned) over N elements.
        unsafe { launch.launch(cfg) }?;
    }
    stream.join(&s1)?;
    stream.join(&s2)?;
    report("saxpy", &s1.clone_dtoh(&d_y)?);
    report("scale_inplace x2", &s2.clone_dtoh(&d_z)?);

    // Memset and a partial copy back.
    let mut d_w = stream.alloc_zeros::<f32>(N)?;
    stream.memcpy_htod(&a[..16], &mut d_w)?;
    report("partial copy", &stream.clone_dtoh(&d_w)?);

    ctx.synchronize()?;
    println!("ok");
    Ok(())
}
