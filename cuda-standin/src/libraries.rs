//! Libraries (`cuLibraryLoadData`, `cuLibraryLoadFromFile`,
//! `cuLibraryGetKernel`, ...): here a library is a module loaded in the
//! context current when it is loaded, and its kernels are that module's
//! functions, so `cuKernelGetFunction` gives the kernel's own handle and
//! `cuLaunchKernel` takes either.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_uint, c_void};

use crate::api::{
    cuFuncGetParamInfo, cuModuleGetFunction, cuModuleGetGlobal_v2, image_text, load_module,
    ptx_file,
};
use crate::errors::*;
use crate::state::{self, Kind, R, handle, id_of};
use crate::{CUdeviceptr, CUresult, Handle};

fn api(f: impl FnOnce() -> R<()>) -> CUresult {
    crate::api::api(f)
}

/// Loads PTX `text` as a library.
fn load_library(plib: *mut Handle, text: &str) -> R<()> {
    if plib.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let mut module: Handle = std::ptr::null_mut();
    load_module(&mut module, text)?;
    let m = id_of(Kind::Module, module).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    let id = state::with(|st| {
        let id = st.id();
        st.libraries.insert(id, m);
        Ok(id)
    })?;
    // SAFETY: non-null and writable per cuda.h.
    unsafe { plib.write(handle(Kind::Library, id)) };
    Ok(())
}

/// The module handle of library `h`, live.
fn module_of(h: Handle) -> R<Handle> {
    let id = id_of(Kind::Library, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    state::with(|st| {
        let m = *st.libraries.get(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        st.modules
            .contains_key(&m)
            .then_some(())
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        Ok(handle(Kind::Module, m))
    })
}

/// `cuLibraryLoadData`: a PTX image; JIT and library options are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLibraryLoadData(
    plib: *mut Handle,
    code: *const c_void,
    _jit_options: *mut c_int,
    _jit_values: *mut *mut c_void,
    _num_jit: c_uint,
    _lib_options: *mut c_int,
    _lib_values: *mut *mut c_void,
    _num_lib: c_uint,
) -> CUresult {
    api(|| {
        state::with(|st| st.current())?;
        load_library(plib, image_text(code)?)
    })
}

/// `cuLibraryLoadFromFile`: a PTX file.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLibraryLoadFromFile(
    plib: *mut Handle,
    file: *const c_char,
    _jit_options: *mut c_int,
    _jit_values: *mut *mut c_void,
    _num_jit: c_uint,
    _lib_options: *mut c_int,
    _lib_values: *mut *mut c_void,
    _num_lib: c_uint,
) -> CUresult {
    api(|| {
        state::with(|st| st.current())?;
        load_library(plib, &ptx_file(file)?)
    })
}

/// `cuLibraryUnload`: the library's module goes with it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLibraryUnload(lib: Handle) -> CUresult {
    api(|| {
        let id = id_of(Kind::Library, lib).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        state::with(|st| {
            let m = st.libraries.remove(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            if st.modules.contains_key(&m) {
                st.unload(m);
            }
            Ok(())
        })
    })
}

/// `cuLibraryGetKernel`: the kernel's function handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLibraryGetKernel(
    pkernel: *mut Handle,
    lib: Handle,
    name: *const c_char,
) -> CUresult {
    match module_of(lib) {
        // SAFETY: the caller's arguments, with the library's module.
        Ok(m) => unsafe { cuModuleGetFunction(pkernel, m, name) },
        Err(e) => e,
    }
}

/// `cuLibraryGetModule`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLibraryGetModule(pmod: *mut Handle, lib: Handle) -> CUresult {
    api(|| {
        let m = module_of(lib)?;
        if pmod.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: non-null and writable per cuda.h.
        unsafe { pmod.write(m) };
        Ok(())
    })
}

/// `cuLibraryGetGlobal`: as the module's (never found: the interpreter
/// has no module-scope variables).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLibraryGetGlobal(
    dptr: *mut CUdeviceptr,
    bytes: *mut usize,
    lib: Handle,
    name: *const c_char,
) -> CUresult {
    match module_of(lib) {
        // SAFETY: the caller's arguments, with the library's module.
        Ok(m) => unsafe { cuModuleGetGlobal_v2(dptr, bytes, m, name) },
        Err(e) => e,
    }
}

/// `cuKernelGetFunction`: the kernel's own handle, once checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuKernelGetFunction(pfunc: *mut Handle, kernel: Handle) -> CUresult {
    api(|| {
        state::with(|st| st.func(kernel))?;
        if pfunc.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: non-null and writable per cuda.h.
        unsafe { pfunc.write(kernel) };
        Ok(())
    })
}

/// `cuKernelGetParamInfo`: as `cuFuncGetParamInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuKernelGetParamInfo(
    kernel: Handle,
    index: usize,
    offset: *mut usize,
    size: *mut usize,
) -> CUresult {
    // SAFETY: the caller's arguments, under the same contract.
    unsafe { cuFuncGetParamInfo(kernel, index, offset, size) }
}
