//! The stand-in's driver state: live handle tables, device memory, the
//! per-thread context stacks, and kernel execution on the interpreter.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Instant;

use crate::errors::*;
use crate::ptx::{self, Entry};
use crate::{CUresult, Handle, TOTAL_MEM};

/// Results of the driver's internals: the error is the `CUresult` to return.
pub type R<T> = Result<T, CUresult>;

/// Device addresses below this are never handed out (no null device
/// pointer); a kernel that writes there faults.
pub const GUARD: u64 = 256;
/// Allocation granularity and alignment.
pub const ALIGN: u64 = 256;

/// Handle kinds, kept in a handle's high bits so that one kind of handle is
/// never taken for another.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Ctx = 0xC7,
    Module = 0x4D,
    Func = 0xF0,
    Stream = 0x57,
    Event = 0xE7,
    Pool = 0x9F,
    Library = 0x1B,
}

const KIND_SHIFT: u32 = 40;

/// The handle a caller sees for the id `id` of kind `kind`.
pub fn handle(kind: Kind, id: u64) -> Handle {
    (((kind as u64) << KIND_SHIFT) | id) as usize as Handle
}

/// The id in `h` if `h` is a handle of kind `kind`.
pub fn id_of(kind: Kind, h: Handle) -> Option<u64> {
    let v = h as usize as u64;
    (v >> KIND_SHIFT == kind as u64 && v & ((1 << KIND_SHIFT) - 1) != 0)
        .then_some(v & ((1 << KIND_SHIFT) - 1))
}

/// A CUDA context.
pub struct Ctx {
    pub primary: bool,
    /// A released primary context is inactive until retained again.
    pub active: bool,
    pub retain: u32,
    pub flags: u32,
    /// A kernel fault: every later call in this context returns it.
    pub sticky: Option<CUresult>,
    pub limits: HashMap<u32, usize>,
    pub cache_config: u32,
}

/// A device allocation.
pub struct Alloc {
    pub size: u64,
    pub ctx: u64,
    pub id: u64,
    /// The memory pool it came from (stream-ordered allocations).
    pub pool: Option<u64>,
}

/// A memory pool: its attributes (`CUmemPool_attribute` 1 to 8; the
/// current amounts are computed from the allocations).
pub struct Pool {
    pub attrs: [u64; 9],
    pub default: bool,
}

/// A loaded module: its own interpreter (the interpreter loads one module
/// per VM), the kernels its PTX declares.
pub struct Module {
    pub ctx: u64,
    pub vm: ptoxide::Context,
    pub entries: Vec<Entry>,
    pub ptx_version: i32,
}

/// A kernel of a module.
pub struct Func {
    pub module: u64,
    pub entry: usize,
    pub name: CString,
}

/// A stream. Work runs when enqueued, so a stream has no queue.
pub struct Stream {
    pub ctx: u64,
    pub flags: u32,
    pub priority: i32,
}

/// An event.
pub struct Event {
    pub ctx: u64,
    pub flags: u32,
    pub recorded: Option<Instant>,
}

/// Everything the driver knows after `cuInit`.
pub struct State {
    next_id: u64,
    /// Device memory: addresses are offsets into it.
    pub mem: Vec<u8>,
    pub allocs: BTreeMap<u64, Alloc>,
    pub contexts: HashMap<u64, Ctx>,
    pub primary: Option<u64>,
    pub primary_flags: u32,
    pub modules: HashMap<u64, Module>,
    pub funcs: HashMap<u64, Func>,
    pub streams: HashMap<u64, Stream>,
    pub events: HashMap<u64, Event>,
    /// Page-locked host memory the driver allocated: start -> (size, ctx).
    pub host_allocs: BTreeMap<usize, (usize, u64)>,
    /// Registered host ranges: start -> (size, ctx, flags).
    pub host_registered: BTreeMap<usize, (usize, u64, u32)>,
    /// Memory pools, the device's default and current ones.
    pub pools: HashMap<u64, Pool>,
    pub default_pool: Option<u64>,
    pub current_pool: Option<u64>,
    /// Libraries: each is a module loaded in the context current at load.
    pub libraries: HashMap<u64, u64>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

thread_local! {
    /// This thread's stack of current contexts (ids), top last.
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// Set while a kernel runs on this thread: its panics are faults, not bugs.
    static IN_KERNEL: Cell<bool> = const { Cell::new(false) };
}

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Initializes the driver state (idempotent).
pub fn init() {
    let mut g = lock();
    if g.is_none() {
        *g = Some(State {
            next_id: 1,
            mem: vec![0; GUARD as usize],
            allocs: BTreeMap::new(),
            contexts: HashMap::new(),
            primary: None,
            primary_flags: 0,
            modules: HashMap::new(),
            funcs: HashMap::new(),
            streams: HashMap::new(),
            events: HashMap::new(),
            host_allocs: BTreeMap::new(),
            host_registered: BTreeMap::new(),
            pools: HashMap::new(),
            default_pool: None,
            current_pool: None,
            libraries: HashMap::new(),
        });
    }
}

/// Runs `f` on the state; `CUDA_ERROR_NOT_INITIALIZED` before `cuInit`.
pub fn with<T>(f: impl FnOnce(&mut State) -> R<T>) -> R<T> {
    let mut g = lock();
    let st = g.as_mut().ok_or(CUDA_ERROR_NOT_INITIALIZED)?;
    f(st)
}

/// This thread's current context id, if any (not validated).
pub fn top() -> Option<u64> {
    STACK.with(|s| s.borrow().last().copied())
}

/// Runs `f` on this thread's context stack.
pub fn stack<T>(f: impl FnOnce(&mut Vec<u64>) -> T) -> T {
    STACK.with(|s| f(&mut s.borrow_mut()))
}

impl State {
    /// A fresh id, never reused, so destroyed handles stay invalid.
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The live context `id`, or `CUDA_ERROR_INVALID_CONTEXT`.
    pub fn ctx(&self, id: u64) -> R<&Ctx> {
        self.contexts
            .get(&id)
            .filter(|c| c.active)
            .ok_or(CUDA_ERROR_INVALID_CONTEXT)
    }

    /// Checks that context `id` is live and not faulted (its sticky error).
    pub fn usable(&self, id: u64) -> R<u64> {
        match self.ctx(id)?.sticky {
            Some(e) => Err(e),
            None => Ok(id),
        }
    }

    /// The calling thread's current context, live and not faulted.
    pub fn current(&self) -> R<u64> {
        let id = top().ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        self.usable(id)
    }

    /// The context id in a `CUcontext` handle, live.
    pub fn ctx_handle(&self, h: Handle) -> R<u64> {
        let id = id_of(Kind::Ctx, h).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        self.ctx(id)?;
        Ok(id)
    }

    /// The context a stream's work runs in: the stream's, or for the NULL,
    /// legacy (1) and per-thread (2) default streams the current one.
    pub fn stream_ctx(&self, h: Handle) -> R<u64> {
        let v = h as usize;
        if v <= 2 {
            return self.current();
        }
        let id = id_of(Kind::Stream, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let s = self.streams.get(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        self.usable(s.ctx)
    }

    /// The event id in `h`, live.
    pub fn event(&self, h: Handle) -> R<u64> {
        let id = id_of(Kind::Event, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let e = self.events.get(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        self.usable(e.ctx)?;
        Ok(id)
    }

    /// The function id in `h`, live.
    pub fn func(&self, h: Handle) -> R<u64> {
        let id = id_of(Kind::Func, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let f = self.funcs.get(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let m = self
            .modules
            .get(&f.module)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        self.usable(m.ctx)?;
        Ok(id)
    }

    /// The module id in `h`, live.
    pub fn module(&self, h: Handle) -> R<u64> {
        let id = id_of(Kind::Module, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let m = self.modules.get(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        self.usable(m.ctx)?;
        Ok(id)
    }

    /// The allocation holding `ptr`: `(start, allocation)`.
    pub fn alloc_at(&self, ptr: u64) -> Option<(u64, &Alloc)> {
        self.allocs
            .range(..=ptr)
            .next_back()
            .filter(|(s, a)| ptr < *s + a.size)
            .map(|(s, a)| (*s, a))
    }

    /// Checks that `[ptr, ptr + len)` lies in one live allocation; its
    /// offset into device memory.
    pub fn range(&self, ptr: u64, len: usize) -> R<usize> {
        if len == 0 {
            return Ok(0);
        }
        let (start, a) = self.alloc_at(ptr).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let end = ptr
            .checked_add(len as u64)
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        if end > start + a.size {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        Ok(ptr as usize)
    }

    /// Allocates `size` bytes of device memory for context `ctx`.
    pub fn mem_alloc(&mut self, ctx: u64, size: usize) -> R<u64> {
        if size == 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let size = size as u64;
        let rounded = size.div_ceil(ALIGN) * ALIGN;
        let mut cursor = GUARD;
        for (s, a) in &self.allocs {
            if *s >= cursor + rounded {
                break;
            }
            cursor = (s + a.size).div_ceil(ALIGN) * ALIGN;
        }
        let end = cursor + rounded;
        if end > TOTAL_MEM {
            return Err(CUDA_ERROR_OUT_OF_MEMORY);
        }
        if (self.mem.len() as u64) < end {
            self.mem.resize(end as usize, 0);
        }
        self.mem[cursor as usize..end as usize].fill(0);
        let id = self.id();
        self.allocs.insert(
            cursor,
            Alloc {
                size,
                ctx,
                id,
                pool: None,
            },
        );
        Ok(cursor)
    }

    /// Frees the allocation that starts at `ptr`.
    pub fn mem_free(&mut self, ptr: u64) -> R<()> {
        let a = self.allocs.get(&ptr).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        self.usable(a.ctx)?;
        self.allocs.remove(&ptr);
        self.trim();
        Ok(())
    }

    /// Shrinks device memory to the end of the last allocation.
    fn trim(&mut self) {
        let end = self
            .allocs
            .iter()
            .next_back()
            .map_or(GUARD, |(s, a)| (s + a.size).div_ceil(ALIGN) * ALIGN);
        self.mem.truncate(end as usize);
    }

    /// Bytes allocated on the device.
    pub fn used(&self) -> u64 {
        self.allocs
            .values()
            .map(|a| a.size.div_ceil(ALIGN) * ALIGN)
            .sum()
    }

    /// Frees everything context `ctx` owns (destroy, primary reset or
    /// release).
    pub fn drop_resources(&mut self, ctx: u64) {
        self.allocs.retain(|_, a| a.ctx != ctx);
        let modules: Vec<u64> = self
            .modules
            .iter()
            .filter(|(_, m)| m.ctx == ctx)
            .map(|(id, _)| *id)
            .collect();
        for m in modules {
            self.unload(m);
        }
        self.streams.retain(|_, s| s.ctx != ctx);
        self.events.retain(|_, e| e.ctx != ctx);
        self.trim();
    }

    /// Unloads module `id` and its functions.
    pub fn unload(&mut self, id: u64) {
        self.modules.remove(&id);
        self.funcs.retain(|_, f| f.module != id);
    }

    /// Loads PTX text into a new module of context `ctx`.
    pub fn load_ptx(&mut self, ctx: u64, src: &str) -> R<u64> {
        let text = ptx::normalize(src);
        let vm = quiet(|| ptoxide::Context::new_with_module(&text))
            .ok()
            .and_then(Result::ok)
            .ok_or(CUDA_ERROR_INVALID_PTX)?;
        let id = self.id();
        self.modules.insert(
            id,
            Module {
                ctx,
                vm,
                entries: ptx::entries(src),
                ptx_version: ptx::ptx_version(src),
            },
        );
        Ok(id)
    }

    /// Runs kernel `func` on device memory. A fault is sticky for the
    /// function's context and is also returned.
    pub fn run_kernel(
        &mut self,
        func: u64,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        args: &[Vec<u8>],
    ) -> R<()> {
        let f = self.funcs.get(&func).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let name = f
            .name
            .to_str()
            .map_err(|_| CUDA_ERROR_INVALID_HANDLE)?
            .to_string();
        let module = f.module;
        let m = self
            .modules
            .get_mut(&module)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let ctx = m.ctx;
        let mem = &mut self.mem;
        m.vm.reset_mem();
        let base = m.vm.alloc_raw(mem.len(), 1);
        m.vm.write_raw(base, 0, mem);
        let argv: Vec<ptoxide::Argument> =
            args.iter().map(|a| ptoxide::Argument::Bytes(a)).collect();
        let outcome = quiet(|| {
            m.vm.run(
                ptoxide::LaunchParams::func(&name)
                    .grid2d(grid.0, grid.1)
                    .block2d(block.0, block.1),
                &argv,
            )
        });
        m.vm.read_raw(base, 0, mem);
        m.vm.reset_mem();
        let mut result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                log(&format!("kernel {name}: {e}"));
                Err(CUDA_ERROR_LAUNCH_FAILED)
            }
            Err(msg) => {
                log(&format!("kernel {name}: {msg}"));
                if msg.contains("out of range for slice") || msg.contains("index out of bounds") {
                    Err(CUDA_ERROR_ILLEGAL_ADDRESS)
                } else {
                    Err(CUDA_ERROR_LAUNCH_FAILED)
                }
            }
        };
        // A store through a null (or nearly null) pointer lands in the guard.
        if mem[..GUARD as usize].iter().any(|b| *b != 0) {
            mem[..GUARD as usize].fill(0);
            log(&format!("kernel {name}: store below address {GUARD}"));
            result = result.and(Err(CUDA_ERROR_ILLEGAL_ADDRESS));
        }
        if let Err(e) = result
            && let Some(c) = self.contexts.get_mut(&ctx)
        {
            c.sticky = Some(e);
        }
        result
    }
}

/// Prints a diagnostic when `AVA_CUDA_STANDIN_LOG` is set.
pub fn log(msg: &str) {
    if std::env::var_os("AVA_CUDA_STANDIN_LOG").is_some() {
        eprintln!("ava-cuda-standin: {msg}");
    }
}

/// Runs `f`, turning a panic into `Err(message)` without printing it
/// (kernel faults and interpreter gaps panic inside the interpreter).
pub fn quiet<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_KERNEL.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = IN_KERNEL.with(|k| k.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_KERNEL.with(|k| k.set(was));
    r.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".to_string())
    })
}
