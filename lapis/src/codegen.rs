//! Code generation from a checked [`Spec`]: the guest library and the
//! worker dispatcher. Not built yet; [`generate`] reports so.

use std::fmt;

use crate::Spec;

/// Which side of the remoting to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The guest library loaded by the application in place of the vendor
    /// library.
    Guest,
    /// The host worker's dispatcher that executes calls on the real driver.
    Worker,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Guest => "guest",
            Side::Worker => "worker",
        })
    }
}

/// Why code generation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodegenError {
    /// The generator for this side does not exist yet.
    #[error("code generation is not yet built (requested: {side} side of API `{api}`)")]
    NotBuilt {
        /// The requested side.
        side: Side,
        /// The API name of the spec.
        api: String,
    },
}

/// Generates the Rust source of one side of the remoting for `spec`.
///
/// Currently always returns [`CodegenError::NotBuilt`].
pub fn generate(spec: &Spec, side: Side) -> Result<String, CodegenError> {
    Err(CodegenError::NotBuilt {
        side,
        api: spec.api.name.name.clone(),
    })
}
