//! Queue names as operators type them, turned into the names on the broker.

use messaging::Names;

const PARKING_SUFFIX: &str = ".parking";

/// The broker name of `given`: the prefix is added unless `given` already starts with it, so
/// both `enrollment.medical.commands` and `t1.enrollment.medical.commands` work with
/// `--prefix t1.`.
pub fn full_name(prefix: &str, given: &str) -> String {
    if prefix.is_empty() || given.starts_with(prefix) {
        given.to_owned()
    } else {
        format!("{prefix}{given}")
    }
}

/// The parking lot of the queue `given` (or `given` itself when it already names a parking
/// lot), with the prefix.
pub fn parking_name(prefix: &str, given: &str) -> String {
    let full = full_name(prefix, given);
    if full.ends_with(PARKING_SUFFIX) {
        full
    } else {
        Names::parking(&full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_the_prefix_once_and_the_parking_suffix_once() {
        let cases = [
            (
                "",
                "enrollment.medical.commands",
                "enrollment.medical.commands.parking",
            ),
            (
                "",
                "enrollment.medical.commands.parking",
                "enrollment.medical.commands.parking",
            ),
            (
                "t1.",
                "enrollment.medical.commands",
                "t1.enrollment.medical.commands.parking",
            ),
            (
                "t1.",
                "t1.enrollment.medical.commands.parking",
                "t1.enrollment.medical.commands.parking",
            ),
            (
                "t1.",
                "enrollment.medical.commands.parking",
                "t1.enrollment.medical.commands.parking",
            ),
        ];
        for (prefix, given, want) in cases {
            assert_eq!(parking_name(prefix, given), want, "{prefix:?} {given:?}");
        }
        assert_eq!(
            full_name("t1.", "card.common.commands"),
            "t1.card.common.commands"
        );
        assert_eq!(full_name("", "card.common.commands"), "card.common.commands");
    }
}
