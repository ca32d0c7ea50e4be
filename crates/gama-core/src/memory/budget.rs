//! The memory budget: how much of `max` (less what is held in reserve) is
//! used, by which operation, the peak, and when usage crosses the
//! optimisation threshold. Pure accounting, shared by every allocation path.
//!
//! Invariant: `used` equals the sum of every operation's `current`, and is
//! never above `max - reserved`.

use std::fmt;

use hashbrown::HashMap;
use parking_lot::Mutex;

/// Usage of one operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperationUsage {
    /// Bytes it holds now.
    pub current: u64,
    /// Most bytes it held at once.
    pub peak: u64,
    /// Reservations it made.
    pub reservations: u64,
    /// Bytes of all its reservations, for the mean request size.
    pub total_requested: u64,
}

/// Usage of one device's budget.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceUsage {
    /// Bytes in use.
    pub used: u64,
    /// Usable bytes (budget less reserve).
    pub total: u64,
    /// `total - used`.
    pub available: u64,
    /// `used / total` in percent.
    pub percentage: f64,
    /// Most bytes used at once since creation or `reset_peak`.
    pub peak: u64,
    /// Bytes held in reserve.
    pub reserved: u64,
    /// Bytes the device's pool holds for reuse (not in use); the budget
    /// itself reports 0, the manager fills it in.
    pub pooled: u64,
}

/// A snapshot of the budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    /// The totals.
    pub device: DeviceUsage,
    /// Usage per operation name.
    pub by_operation: Vec<(String, OperationUsage)>,
}

/// Which way usage crossed the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pressure {
    /// Usage rose to or above the threshold.
    Rising,
    /// Usage fell back below it.
    Falling,
}

/// A request the budget cannot grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverBudget {
    /// Bytes asked for.
    pub requested: u64,
    /// Bytes still available.
    pub available: u64,
    /// The operation that asked.
    pub operation: String,
}

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot allocate {} bytes for '{}': only {} bytes of the budget are free",
            self.requested, self.operation, self.available
        )
    }
}

impl std::error::Error for OverBudget {}

struct State {
    used: u64,
    peak: u64,
    above: bool,
    operations: HashMap<String, OperationUsage>,
}

/// A thread-safe memory budget.
pub struct Budget {
    max: u64,
    reserved: u64,
    threshold_percent: f64,
    state: Mutex<State>,
}

impl Budget {
    /// A budget of `max` bytes keeping `reserved` aside, with pressure
    /// reported at `threshold_percent` of the usable part.
    pub fn new(max: u64, reserved: u64, threshold_percent: f64) -> Self {
        Budget {
            max,
            reserved: reserved.min(max),
            threshold_percent,
            state: Mutex::new(State {
                used: 0,
                peak: 0,
                above: false,
                operations: HashMap::new(),
            }),
        }
    }

    /// Usable bytes: max less the reserve.
    pub fn total(&self) -> u64 {
        self.max - self.reserved
    }

    /// Bytes in use now.
    pub fn used(&self) -> u64 {
        self.state.lock().used
    }

    fn threshold_bytes(&self) -> u64 {
        (self.total() as f64 * self.threshold_percent / 100.0) as u64
    }

    fn pressure_change(&self, state: &mut State) -> Option<Pressure> {
        let above = state.used > 0 && state.used >= self.threshold_bytes();
        (above != state.above).then(|| {
            state.above = above;
            if above {
                Pressure::Rising
            } else {
                Pressure::Falling
            }
        })
    }

    /// Takes `bytes` for `operation`; returns whether usage crossed the threshold.
    pub fn reserve(&self, bytes: u64, operation: &str) -> Result<Option<Pressure>, OverBudget> {
        let mut state = self.state.lock();
        let available = self.total() - state.used;
        if bytes > available {
            return Err(OverBudget {
                requested: bytes,
                available,
                operation: operation.to_string(),
            });
        }
        state.used += bytes;
        state.peak = state.peak.max(state.used);
        let op = state.operations.entry_ref(operation).or_default();
        op.current += bytes;
        op.peak = op.peak.max(op.current);
        op.reservations += 1;
        op.total_requested += bytes;
        Ok(self.pressure_change(&mut state))
    }

    /// Gives back `bytes` that `operation` reserved; returns whether usage crossed the threshold.
    pub fn release(&self, bytes: u64, operation: &str) -> Option<Pressure> {
        let mut state = self.state.lock();
        if let Some(op) = state.operations.get_mut(operation) {
            op.current = op.current.saturating_sub(bytes);
        }
        state.used = state.used.saturating_sub(bytes);
        self.pressure_change(&mut state)
    }

    /// `used / total` in percent (100 for a budget of nothing), without the
    /// per-operation copy `usage` makes.
    pub fn percentage(&self) -> f64 {
        percent(self.state.lock().used, self.total())
    }

    /// A snapshot, operations sorted by current use (largest first).
    pub fn usage(&self) -> Usage {
        let state = self.state.lock();
        let total = self.total();
        let mut by_operation: Vec<(String, OperationUsage)> = state
            .operations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        by_operation.sort_by(|a, b| b.1.current.cmp(&a.1.current).then(a.0.cmp(&b.0)));
        Usage {
            device: DeviceUsage {
                used: state.used,
                total,
                available: total - state.used,
                percentage: percent(state.used, total),
                peak: state.peak,
                reserved: self.reserved,
                pooled: 0,
            },
            by_operation,
        }
    }

    /// Starts the peak again from current use.
    pub fn reset_peak(&self) {
        let mut state = self.state.lock();
        state.peak = state.used;
    }

    /// How many items of `bytes_per_item` fit below the threshold now, using
    /// the operation's mean past request if larger, clamped to `min..=max`.
    pub fn recommend_batch_size(
        &self,
        operation: &str,
        bytes_per_item: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let state = self.state.lock();
        let seen = state
            .operations
            .get(operation)
            .filter(|op| op.reservations > 0)
            .map_or(0, |op| op.total_requested / op.reservations);
        let per_item = bytes_per_item.max(seen).max(1);
        let room = self.threshold_bytes().saturating_sub(state.used);
        (room / per_item).clamp(min, max.max(min))
    }
}

/// `used / total` in percent; 100 when `total` is 0.
fn percent(used: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        used as f64 * 100.0 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_by_operation_and_refuses_past_the_limit() {
        let budget = Budget::new(1000, 200, 70.0);
        budget.reserve(300, "mel").unwrap();
        budget.reserve(100, "mfcc").unwrap();
        let err = budget.reserve(500, "mel").unwrap_err();
        assert_eq!((err.requested, err.available), (500, 400));
        assert!(err.to_string().contains("'mel'"));
        let usage = budget.usage();
        let d = &usage.device;
        assert_eq!(
            (d.used, d.total, d.available, d.reserved),
            (400, 800, 400, 200)
        );
        assert_eq!(d.percentage, 50.0);
        assert_eq!(usage.by_operation[0].0, "mel");
        budget.release(300, "mel");
        let d = budget.usage().device;
        assert_eq!((d.used, d.peak), (100, 400));
        budget.reset_peak();
        assert_eq!(budget.usage().device.peak, 100);
    }

    #[test]
    fn reports_threshold_crossings_once_each_way() {
        let budget = Budget::new(1000, 0, 70.0);
        assert_eq!(budget.reserve(600, "a"), Ok(None));
        assert_eq!(budget.reserve(100, "a"), Ok(Some(Pressure::Rising)));
        assert_eq!(budget.reserve(100, "a"), Ok(None));
        assert_eq!(budget.release(100, "a"), None);
        assert_eq!(budget.release(200, "a"), Some(Pressure::Falling));
    }

    #[test]
    fn recommends_batch_sizes_from_room_below_the_threshold() {
        let budget = Budget::new(1000, 0, 50.0);
        assert_eq!(budget.recommend_batch_size("x", 10, 1, 1000), 50);
        budget.reserve(100, "x").unwrap();
        assert_eq!(
            budget.recommend_batch_size("x", 10, 1, 1000),
            4,
            "past requests of 100 bytes each"
        );
        assert_eq!(budget.recommend_batch_size("y", 10, 1, 8), 8);
        budget.reserve(400, "y").unwrap();
        assert_eq!(
            budget.recommend_batch_size("y", 10, 2, 8),
            2,
            "no room: the minimum"
        );
    }
}
