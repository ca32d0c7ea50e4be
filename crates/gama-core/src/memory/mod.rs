//! Memory: size parsing shared by every option that takes a size, the
//! budget, the host buffer pool, the sub-allocator, the GPU pool over device
//! memory, and the manager that ties them together for JS and the batch
//! processor.

pub mod advice;
pub mod budget;
mod gauges;
pub mod gpu;
pub mod host_pool;
pub mod manager;
pub mod size;
pub mod suballoc;
pub mod system;

pub use gauges::MemoryGauges;
pub use manager::{
    Device, DeviceChoice, GpuLease, HostLease, ManagerConfig, MemoryError, MemoryManager,
    MemoryUsage, PressureEvent, Reservation,
};
pub use size::{bytes_from_number, parse_size, SizeError};
