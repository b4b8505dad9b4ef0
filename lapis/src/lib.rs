//! The LAPIS specification language (being built).
