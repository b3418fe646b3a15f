//! The one clock freeze orders are judged by: the real one, or a drill clock that runs from
//! an origin at a speed, so that an operator can rehearse a whole timetable in minutes and
//! tests can replay the agencies' real timetables in accelerated time.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Clock {
    Real,
    /// `now = origin + (wall now − wall start) × speed`. Services given the same origin,
    /// start and speed agree on the time.
    Drill {
        origin: DateTime<Utc>,
        wall_start: DateTime<Utc>,
        speed: f64,
    },
}

/// `messaging.freeze.clock` in the settings; absent = the real clock.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    /// The drill's first instant (RFC 3339, e.g. `2021-12-14T17:00:00+08:00`).
    pub drill_origin: Option<DateTime<chrono::FixedOffset>>,
    /// The wall-clock instant the drill started; absent = when the service started.
    pub drill_wall_start: Option<DateTime<chrono::FixedOffset>>,
    /// Drill seconds per wall second (600: ten minutes a second).
    pub drill_speed: Option<f64>,
}

impl ClockSettings {
    pub fn clock(&self) -> Clock {
        match self.drill_origin {
            None => Clock::Real,
            Some(origin) => Clock::Drill {
                origin: origin.with_timezone(&Utc),
                wall_start: self
                    .drill_wall_start
                    .map_or_else(Utc::now, |w| w.with_timezone(&Utc)),
                speed: self.drill_speed.unwrap_or(1.0).max(0.0),
            },
        }
    }
}

impl Clock {
    /// A drill clock that starts now at `origin`.
    pub fn drill(origin: DateTime<Utc>, speed: f64) -> Self {
        Clock::Drill {
            origin,
            wall_start: Utc::now(),
            speed,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Real => Utc::now(),
            Clock::Drill {
                origin,
                wall_start,
                speed,
            } => {
                let wall = (Utc::now() - *wall_start).num_microseconds().unwrap_or(i64::MAX) as f64;
                *origin + chrono::Duration::microseconds((wall * speed) as i64)
            }
        }
    }

    /// How long on the wall clock until this clock shows `t` (zero if it has passed).
    pub fn wall_until(&self, t: DateTime<Utc>) -> Duration {
        let ahead = (t - self.now()).to_std().unwrap_or(Duration::ZERO);
        match self {
            Clock::Real => ahead,
            Clock::Drill { speed, .. } if *speed > 0.0 => ahead.div_f64(*speed),
            Clock::Drill { .. } => Duration::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_clock_runs_from_its_origin_at_its_speed() {
        let origin: DateTime<Utc> = "2021-12-14T09:00:00Z".parse().unwrap();
        let c = Clock::Drill {
            origin,
            wall_start: Utc::now() - chrono::Duration::seconds(2),
            speed: 3600.0,
        };
        let now = c.now();
        // Two wall seconds at an hour a second: two hours in (with a little slack).
        assert!(now >= origin + chrono::Duration::hours(2), "{now}");
        assert!(
            now < origin + chrono::Duration::hours(2) + chrono::Duration::minutes(30),
            "{now}"
        );
        let wait = c.wall_until(now + chrono::Duration::hours(1));
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::from_millis(900),
            "{wait:?}"
        );
        assert_eq!(ClockSettings::default().clock(), Clock::Real);
    }
}
