//! Every RabbitMQ name the suite uses (DESIGN.md §2), behind one optional prefix so that
//! tests and side-by-side environments never see each other's messages.

use contracts::Line;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// `prefix` is prepended verbatim (e.g. `t3f9a.`); empty in production.
    pub fn new(prefix: impl Into<String>) -> Self {
        Names {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn p(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn commands_exchange(&self) -> String {
        self.p("insurance.commands")
    }

    pub fn events_exchange(&self) -> String {
        self.p("insurance.events")
    }

    pub fn control_exchange(&self) -> String {
        self.p("insurance.control")
    }

    pub fn events_archive(&self) -> String {
        self.p("insurance.events.archive")
    }

    pub fn command_queue(&self, service: &str, line: Line) -> String {
        self.p(&format!("{service}.{line}.commands"))
    }

    pub fn event_queue(&self, service: &str, line: Line) -> String {
        self.p(&format!("{service}.{line}.events"))
    }

    pub fn control_queue(&self, service: &str) -> String {
        self.p(&format!("{service}.control"))
    }

    pub fn subscriber_queue(&self, name: &str) -> String {
        self.p(&format!("subscriber.{name}"))
    }

    /// What external subscribers' queues are bound to: the events of each line, as the
    /// line's data-sharing shovel releases them (`freeze::data_sharing`).
    pub fn subscribers_exchange(&self) -> String {
        self.p("insurance.subscribers")
    }

    /// Where `line`'s events wait for external subscribers while its data-sharing channel is
    /// frozen.
    pub fn data_sharing_hold(&self, line: Line) -> String {
        self.p(&format!("subscribers.{line}.hold"))
    }

    /// The dynamic shovel that moves `line`'s events from its hold queue to the subscribers.
    pub fn data_sharing_shovel(&self, line: Line) -> String {
        self.p(&format!("subscribers-{line}"))
    }

    /// Where poison and exhausted messages from `queue` wait for an operator.
    pub fn parking(queue: &str) -> String {
        format!("{queue}.parking")
    }

    /// The single delayed retry queue of an external subscriber's queue (operator tooling).
    pub fn retry(queue: &str) -> String {
        format!("{queue}.retry")
    }

    /// The retry tier of `queue` that holds a message for `delay` before it goes back.
    /// The delay is in the name, so a changed tier is a new queue, never a redeclaration
    /// with other arguments.
    pub fn retry_tier(queue: &str, delay: std::time::Duration) -> String {
        let ms = delay.as_millis();
        let label = if ms.is_multiple_of(60_000) && ms > 0 {
            format!("{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) && ms > 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        format!("{queue}.retry.{label}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design_and_carry_the_prefix() {
        let n = Names::new("t1.");
        assert_eq!(n.commands_exchange(), "t1.insurance.commands");
        assert_eq!(
            n.command_queue("enrollment", Line::Medical),
            "t1.enrollment.medical.commands"
        );
        assert_eq!(
            n.event_queue("benefits", Line::Social),
            "t1.benefits.social.events"
        );
        assert_eq!(
            Names::parking(&n.command_queue("enrollment", Line::Social)),
            "t1.enrollment.social.commands.parking"
        );
        assert_eq!(Names::default().events_archive(), "insurance.events.archive");
        let q = "enrollment.medical.commands";
        let tier = |ms| Names::retry_tier(q, std::time::Duration::from_millis(ms));
        assert_eq!(tier(1000), "enrollment.medical.commands.retry.1s");
        assert_eq!(tier(600_000), "enrollment.medical.commands.retry.10m");
        assert_eq!(tier(300), "enrollment.medical.commands.retry.300ms");
    }
}
