//! Memory: size parsing shared by every option that takes a size, and the
//! sub-allocator the memory pools place blocks with.

pub mod size;
pub mod suballoc;

pub use size::{bytes_from_number, parse_size, SizeError};
