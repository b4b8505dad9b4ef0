//! The test API end to end: every function is called through the generated
//! guest code in this process, over a shared-memory region, executed by the
//! generated worker dispatcher in a `testapi-worker` process — and directly
//! on the same library. Every result must be equal.

use std::ffi::{CString, c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

remoting::generated! {
    /// The generated guest side.
    mod remote = "testapi_guest.rs";
}

/// Direct calls into the library, resolved with libloading.
struct Direct {
    _lib: libloading::Library,
    create: unsafe extern "C" fn(i32, *mut i32) -> *mut c_void,
    retain: unsafe extern "C" fn(*mut c_void) -> i32,
    release: unsafe extern "C" fn(*mut c_void) -> i32,
    get: unsafe extern "C" fn(*mut c_void, *mut i32) -> i32,
    add: unsafe extern "C" fn(*mut c_void, i32) -> i32,
    dot: unsafe extern "C" fn(*mut c_void, *const i32, usize, *mut i64) -> i32,
    scale: unsafe extern "C" fn(*mut f32, usize, f32) -> i32,
    hash: unsafe extern "C" fn(*mut *const c_void, *const usize, usize, *mut u64) -> i32,
    join: unsafe extern "C" fn(*mut *const c_char, usize, usize, *mut c_char, *mut usize) -> i32,
    read_async: unsafe extern "C" fn(*mut c_void, *mut i32, usize) -> i32,
    sync: unsafe extern "C" fn(*mut c_void) -> i32,
    visit: unsafe extern "C" fn(*mut c_void, remote::ta_notify, *mut c_void) -> i32,
}

impl Direct {
    fn load() -> Direct {
        // SAFETY: the test library has no initialisers of note.
        let lib = unsafe { libloading::Library::new(common::library_path()) }
            .expect("libava_testapi.so is built");
        macro_rules! sym {
            ($n:literal) => {
                // SAFETY: the symbol has the signature of the field it fills.
                unsafe { *lib.get(concat!($n, "\0").as_bytes()).expect($n) }
            };
        }
        Direct {
            create: sym!("ta_create"),
            retain: sym!("ta_retain"),
            release: sym!("ta_release"),
            get: sym!("ta_get"),
            add: sym!("ta_add"),
            dot: sym!("ta_dot"),
            scale: sym!("ta_scale"),
            hash: sym!("ta_hash"),
            join: sym!("ta_join"),
            read_async: sym!("ta_read_async"),
            sync: sym!("ta_sync"),
            visit: sym!("ta_visit"),
            _lib: lib,
        }
    }
}

static VISITS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn on_visit(_obj: *mut c_void, user_data: *mut c_void) {
    VISITS.fetch_add(user_data as usize, Ordering::SeqCst);
}

/// One scenario, run against a set of entry points.
macro_rules! scenario {
    ($create:expr, $retain:expr, $release:expr, $get:expr, $add:expr, $dot:expr, $scale:expr, $hash:expr, $join:expr, $read_async:expr, $sync:expr, $visit:expr) => {{
        let mut log: Vec<String> = Vec::new();
        // SAFETY: every pointer passed is a live local of the right size,
        // or NULL where the API accepts it.
        unsafe {
            let mut st = 99;
            let a = $create(6, &mut st);
            log.push(format!("create status {st} null {}", a.is_null()));
            let mut v = 0;
            log.push(format!("get {} {}", $get(a, &mut v), v));
            // Asynchronous adds, observed by the next synchronous call.
            for d in [1, 2, 3] {
                log.push(format!("add {}", $add(a, d)));
            }
            log.push(format!("get {} {}", $get(a, &mut v), v));
            // In buffer, out scalar.
            let vals: Vec<i32> = (1..=100).collect();
            let mut r = 0i64;
            log.push(format!(
                "dot {} {}",
                $dot(a, vals.as_ptr(), vals.len(), &mut r),
                r
            ));
            // Large in buffer: through the data arena.
            let big: Vec<i32> = (0..20_000).collect();
            log.push(format!(
                "dot-big {} {}",
                $dot(a, big.as_ptr(), big.len(), &mut r),
                r
            ));
            // In-out buffer.
            let mut fl = vec![1.5f32, -2.0, 3.25];
            log.push(format!(
                "scale {} {:?}",
                $scale(fl.as_mut_ptr(), fl.len(), 2.0),
                fl
            ));
            // Element-wise buffers with their own sizes.
            let blobs: [&[u8]; 3] = [b"alpha", b"", b"gamma-delta"];
            let ptrs: Vec<*const c_void> = blobs.iter().map(|b| b.as_ptr().cast()).collect();
            let sizes: Vec<usize> = blobs.iter().map(|b| b.len()).collect();
            let mut h = 0u64;
            log.push(format!(
                "hash {} {h:x}",
                $hash(ptrs.as_ptr() as *mut _, sizes.as_ptr(), 3, &mut h)
            ));
            // Size query, then fill.
            let parts: Vec<CString> = ["x", "yy", "zzz"]
                .iter()
                .map(|s| CString::new(*s).unwrap())
                .collect();
            let pp: Vec<*const c_char> = parts.iter().map(|s| s.as_ptr()).collect();
            let mut need = 0usize;
            log.push(format!(
                "join-size {} {need}",
                $join(pp.as_ptr() as *mut _, 3, 0, std::ptr::null_mut(), &mut need)
            ));
            let mut out = vec![0 as c_char; need];
            let rc = $join(
                pp.as_ptr() as *mut _,
                3,
                need,
                out.as_mut_ptr(),
                std::ptr::null_mut(),
            );
            let text = std::ffi::CStr::from_ptr(out.as_ptr())
                .to_string_lossy()
                .into_owned();
            log.push(format!("join {rc} {text}"));
            // A deferred output: empty until the synchronous call.
            let mut dst = vec![-1i32; 5];
            log.push(format!(
                "read_async {}",
                $read_async(a, dst.as_mut_ptr(), dst.len())
            ));
            log.push(format!("before sync {:?}", dst));
            log.push(format!("sync {}", $sync(a)));
            log.push(format!("after sync {:?}", dst));
            // A callback, called only when the value is even (12 is even).
            VISITS.store(0, Ordering::SeqCst);
            log.push(format!(
                "visit {}",
                $visit(a, Some(on_visit), 7 as *mut c_void)
            ));
            log.push(format!("visits {}", VISITS.load(Ordering::SeqCst)));
            log.push(format!("add {}", $add(a, 1)));
            log.push(format!(
                "visit-odd {}",
                $visit(a, Some(on_visit), 7 as *mut c_void)
            ));
            log.push(format!("visits {}", VISITS.load(Ordering::SeqCst)));
            // Handle lifetime: retain, release twice, then the handle is gone.
            log.push(format!("retain {}", $retain(a)));
            log.push(format!("release {}", $release(a)));
            log.push(format!("get-after-one-release {} {}", $get(a, &mut v), v));
            log.push(format!("release {}", $release(a)));
            log.push(format!("get-after-free {}", $get(a, &mut v)));
            log.push(format!("release-again {}", $release(a)));
        }
        log
    }};
}

#[test]
fn every_result_equals_a_direct_call() {
    let worker = common::Worker::start("testapi", &[]);
    // SAFETY: set before any other thread exists that reads the environment.
    unsafe { std::env::set_var("AVA_REGION", &worker.region) };

    let d = Direct::load();
    let direct = scenario!(
        d.create,
        d.retain,
        d.release,
        d.get,
        d.add,
        d.dot,
        d.scale,
        d.hash,
        d.join,
        d.read_async,
        d.sync,
        d.visit
    );
    let remote = scenario!(
        remote::ta_create,
        remote::ta_retain,
        remote::ta_release,
        remote::ta_get,
        remote::ta_add,
        remote::ta_dot,
        remote::ta_scale,
        remote::ta_hash,
        remote::ta_join,
        remote::ta_read_async,
        remote::ta_sync,
        remote::ta_visit
    );
    for (i, (a, b)) in direct.iter().zip(&remote).enumerate() {
        println!("{i:2} direct: {a:<40} remote: {b}");
    }
    assert_eq!(direct.len(), remote.len());
    assert_eq!(direct, remote);
    // The scenario really exercised the interesting paths.
    assert!(direct.contains(&"before sync [-1, -1, -1, -1, -1]".to_string()));
    assert!(direct.contains(&"after sync [12000, 12001, 12002, 12003, 12004]".to_string()));
    assert!(direct.contains(&"visits 7".to_string()));
    assert!(direct.contains(&"get-after-free -1".to_string()));

    // Not remoted: a clear error value, without reaching the worker.
    // SAFETY: a NULL object is an accepted argument.
    assert_eq!(unsafe { remote::ta_debug_dump(std::ptr::null_mut()) }, -3);
    // A handle the worker never issued.
    let mut v = 0;
    let forged = 0xA7A0_0000_DEAD_BEEF_u64 as usize as *mut c_void;
    // SAFETY: the object is an opaque id (never dereferenced by the guest);
    // `v` is a live local.
    assert_eq!(unsafe { remote::ta_get(forged, &mut v) }, -1);
}
