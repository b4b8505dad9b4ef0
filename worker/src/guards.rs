//! Hand-written checks that the OpenCL spec names with `guard(NAME)`: rules
//! about argument *contents* that a specification cannot state. Each runs on
//! the decoded, translated arguments before the real function is called.

use std::ffi::c_void;

use remoting::worker::{CallCtx, DispatchError};

use crate::opencl::{self, Api, cl_kernel, cl_uint};

const CL_KERNEL_ARG_ADDRESS_QUALIFIER: u32 = 0x1196;
const CL_KERNEL_ARG_ADDRESS_GLOBAL: u32 = 0x119B;
const CL_KERNEL_ARG_ADDRESS_CONSTANT: u32 = 0x119C;
const CL_KERNEL_ARG_TYPE_NAME: u32 = 0x1198;

/// `clSetKernelArg`: a pointer-sized value given for a `__global` or
/// `__constant` buffer argument (or a `sampler_t`) must be NULL or a live
/// object of this guest — the driver dereferences it. Anything else is
/// `CL_INVALID_MEM_OBJECT` / `CL_INVALID_SAMPLER`, as an invalid object is
/// natively.
///
/// # Safety
/// The arguments are those the dispatcher would pass to `clSetKernelArg`:
/// `arg_value` is NULL or points to `arg_size` readable bytes.
pub unsafe fn kernel_arg(
    api: &Api,
    cx: &CallCtx<'_>,
    kernel: cl_kernel,
    arg_index: cl_uint,
    arg_size: usize,
    arg_value: *const c_void,
) -> Result<(), DispatchError> {
    if arg_value.is_null() || arg_size != size_of::<u64>() {
        return Ok(());
    }
    // SAFETY: the dispatcher checked that `arg_value` holds `arg_size` (8)
    // bytes of worker memory; it may be unaligned.
    let value = unsafe { std::ptr::read_unaligned(arg_value.cast::<u64>()) };
    if value == 0
        || cx.is_live_host(opencl::kind::cl_mem, value)
        || cx.is_live_host(opencl::kind::cl_sampler, value)
    {
        return Ok(());
    }
    let Some(info) = api.clGetKernelArgInfo else {
        return Err(DispatchError::Api(opencl::CL_INVALID_MEM_OBJECT.into()));
    };
    let mut qualifier: u32 = 0;
    // SAFETY: `kernel` is a live kernel of this guest (translated); the
    // output is a local of the size passed.
    let rc = unsafe {
        info(
            kernel,
            arg_index,
            CL_KERNEL_ARG_ADDRESS_QUALIFIER,
            size_of::<u32>(),
            (&mut qualifier as *mut u32).cast(),
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        // Without argument information the value cannot be told from a
        // plain 8-byte scalar; let the driver validate the index and size.
        return Ok(());
    }
    if qualifier == CL_KERNEL_ARG_ADDRESS_GLOBAL || qualifier == CL_KERNEL_ARG_ADDRESS_CONSTANT {
        return Err(DispatchError::Api(opencl::CL_INVALID_MEM_OBJECT.into()));
    }
    let mut name = [0u8; 64];
    // SAFETY: as above, with a 64-byte local buffer.
    let rc = unsafe {
        info(
            kernel,
            arg_index,
            CL_KERNEL_ARG_TYPE_NAME,
            name.len(),
            name.as_mut_ptr().cast(),
            std::ptr::null_mut(),
        )
    };
    if rc == 0 && name.starts_with(b"sampler_t") {
        return Err(DispatchError::Api(opencl::CL_INVALID_SAMPLER.into()));
    }
    Ok(())
}
