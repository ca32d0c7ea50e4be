//! Memory: size parsing shared by every option that takes a size, the
//! budget, the host buffer pool, and the sub-allocator the device pool places
//! blocks with.

pub mod budget;
pub mod host_pool;
pub mod size;
pub mod suballoc;

pub use size::{bytes_from_number, parse_size, SizeError};
