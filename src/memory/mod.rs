//! Memory: size parsing shared by every option that takes a size.

pub mod size;

pub use size::{bytes_from_number, parse_size, SizeError};
