//! The machine's memory and this process's resident size, from `sysinfo`.

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

/// Memory of the machine and of this process, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemMemory {
    /// Physical memory of the machine.
    pub total: u64,
    /// Memory available to new allocations.
    pub available: u64,
    /// Resident set size of this process.
    pub process_rss: u64,
}

/// A fresh reading.
pub fn system_memory() -> SystemMemory {
    let mut system = System::new();
    system.refresh_memory();
    let process_rss = sysinfo::get_current_pid().ok().map_or(0, |pid| {
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        system.process(pid).map_or(0, |p| p.memory())
    });
    SystemMemory {
        total: system.total_memory(),
        available: system.available_memory(),
        process_rss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_and_this_process() {
        let m = system_memory();
        assert!(m.total > 0 && m.available <= m.total);
        assert!(m.process_rss > 0 && m.process_rss < m.total);
    }
}
