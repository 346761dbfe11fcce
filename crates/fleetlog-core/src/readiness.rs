//! What to do with an instance whose SSM agent has not registered yet.
//!
//! The Lambda never sleeps: the message goes back to the queue with a growing visibility timeout, and
//! after the readiness bound it is dead-lettered with a reason.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessPolicy {
    /// Give up once the instance has been waited on this long (default 15 minutes).
    pub give_up_after: Duration,
    /// First retry delay; doubles each receive.
    pub first_delay: Duration,
    /// Largest single delay.
    pub max_delay: Duration,
}

impl Default for ReadinessPolicy {
    fn default() -> Self {
        Self {
            give_up_after: Duration::from_secs(15 * 60),
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadinessStep {
    /// Make the message visible again after this long.
    RetryAfter(Duration),
    /// Waited long enough: dead-letter with a reason.
    GiveUp { waited: Duration },
}

impl ReadinessPolicy {
    /// `waited`: since the event was first received; `receive_count`: SQS ApproximateReceiveCount (≥ 1).
    pub fn next_step(&self, waited: Duration, receive_count: u32) -> ReadinessStep {
        if waited >= self.give_up_after {
            return ReadinessStep::GiveUp { waited };
        }
        let exponent = receive_count.saturating_sub(1).min(16);
        let delay = self.first_delay.saturating_mul(1 << exponent).min(self.max_delay);
        // Never wait past the bound by more than one short retry.
        let remaining = self.give_up_after - waited;
        ReadinessStep::RetryAfter(delay.min(remaining.max(Duration::from_secs(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap_then_give_up() {
        let p = ReadinessPolicy::default();
        let secs = |step| match step {
            ReadinessStep::RetryAfter(d) => d.as_secs(),
            ReadinessStep::GiveUp { .. } => u64::MAX,
        };
        assert_eq!(secs(p.next_step(Duration::ZERO, 1)), 30);
        assert_eq!(secs(p.next_step(Duration::from_secs(30), 2)), 60);
        assert_eq!(secs(p.next_step(Duration::from_secs(90), 3)), 120);
        assert_eq!(secs(p.next_step(Duration::from_secs(210), 4)), 240);
        assert_eq!(secs(p.next_step(Duration::from_secs(450), 5)), 300);
        assert_eq!(secs(p.next_step(Duration::from_secs(850), 6)), 50);
        assert_eq!(
            p.next_step(Duration::from_secs(900), 7),
            ReadinessStep::GiveUp { waited: Duration::from_secs(900) }
        );
        // A huge receive count does not overflow.
        assert_eq!(secs(p.next_step(Duration::ZERO, u32::MAX)), 300);
    }
}
