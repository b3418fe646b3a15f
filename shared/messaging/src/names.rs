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

    /// Where poison and exhausted messages from `queue` wait for an operator.
    pub fn parking(queue: &str) -> String {
        format!("{queue}.parking")
    }

    /// Where a transiently failing message from `queue` waits before it is tried again.
    pub fn retry(queue: &str) -> String {
        format!("{queue}.retry")
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
    }
}
