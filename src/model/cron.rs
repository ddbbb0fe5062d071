//! Schedules (README: Flow control): standard 5-field cron expressions, the `@hourly`-style
//! macros and `@every <duration>`, on local wall-clock time. Plain Rust: the time zone is
//! applied by the engine (Postgres' `AT TIME ZONE`), so this model only walks the fields.
//!
//! Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), day of
//! week (0-7 or sun-sat, 0 and 7 both Sunday); each `*`, a number, a range `a-b`, a list
//! `a,b`, a step `*/n` or `a-b/n`. As in Vixie cron, when both day fields are restricted
//! a day matches if either does.

use super::interval::{parse_text, Micros};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Cron(Cron),
    /// A fixed interval, from the last fire (or the creation).
    Every(Micros),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// The day-of-month and day-of-week fields were both restricted (`*` is not).
    both_days_restricted: bool,
}

/// A local wall-clock time, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Local {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

fn parse_field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + min);
        }
        s.parse::<u32>().ok().filter(|v| (min..=max).contains(v)).ok_or_else(|| {
            format!(
                "the {what} field has \"{s}\"; write a number from {min} to {max}{}",
                if names.is_empty() { "" } else { " or a name" }
            )
        })
    };
    let mut bits = 0u64;
    let restricted = text != "*";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("the {what} field has step \"{s}\"; write a whole number above 0"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("the {what} field has the range \"{range}\", which runs backwards"));
            }
            (a, b)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, restricted))
}

impl Schedule {
    /// Parses a schedule; the error names what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        if let Some(every) = expanded.strip_prefix("@every") {
            let us = parse_text(every.trim())?;
            if us < 1_000_000 {
                return Err("an interval must be at least one second".into());
            }
            return Ok(Schedule::Every(us));
        }
        if expanded.starts_with('@') {
            return Err("it is not a macro; write @yearly, @annually, @monthly, @weekly, @daily, @midnight, \
                 @hourly or @every followed by an interval such as 30s, 15m or 1h"
                .into());
        }
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "it has {} fields; write minute hour day-of-month month day-of-week (e.g. \"0 2 * * *\"), \
                 a macro such as @daily, or @every 30s",
                fields.len()
            ));
        }
        const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
        const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let (minutes, _) = parse_field(fields[0], "minute", 0, 59, &[])?;
        let (hours, _) = parse_field(fields[1], "hour", 0, 23, &[])?;
        let (days, days_restricted) = parse_field(fields[2], "day-of-month", 1, 31, &[])?;
        let (months, _) = parse_field(fields[3], "month", 1, 12, MONTHS)?;
        let (mut weekdays, weekdays_restricted) = parse_field(fields[4], "day-of-week", 0, 7, DAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Schedule::Cron(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            both_days_restricted: days_restricted && weekdays_restricted,
        }))
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0 = Sunday (Zeller-free: days since 1970-01-01, a Thursday).
fn weekday(year: i32, month: u32, day: u32) -> u32 {
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe as u32 * 365 + yoe as u32 / 4 - yoe as u32 / 100 + doy;
    let days = era as i64 * 146_097 + doe as i64 - 719_468;
    ((days + 4).rem_euclid(7)) as u32
}

impl Cron {
    fn day_matches(&self, year: i32, month: u32, day: u32) -> bool {
        let by_date = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday(year, month, day)) != 0;
        if self.both_days_restricted {
            by_date || by_weekday
        } else {
            by_date && by_weekday
        }
    }

    /// The first local minute strictly after `after` that matches; `None` if none does in
    /// the next 28 years (an impossible date such as February 30).
    pub fn next_after(&self, after: Local) -> Option<Local> {
        let mut t = after;
        // The next minute.
        t.minute += 1;
        if t.minute == 60 {
            t.minute = 0;
            t.hour += 1;
        }
        let limit = after.year + 28;
        loop {
            if t.hour == 24 {
                t.hour = 0;
                t.day += 1;
            }
            if t.day > days_in_month(t.year, t.month) {
                t.day = 1;
                t.month += 1;
            }
            if t.month > 12 {
                t.month = 1;
                t.year += 1;
            }
            if t.year > limit {
                return None;
            }
            if self.months & (1 << t.month) == 0 {
                t.month += 1;
                t.day = 1;
                t.hour = 0;
                t.minute = 0;
                continue;
            }
            if !self.day_matches(t.year, t.month, t.day) {
                t.day += 1;
                t.hour = 0;
                t.minute = 0;
                continue;
            }
            if self.hours & (1 << t.hour) == 0 {
                t.hour += 1;
                t.minute = 0;
                continue;
            }
            match (t.minute..60).find(|m| self.minutes & (1 << m) != 0) {
                Some(m) => {
                    t.minute = m;
                    return Some(t);
                }
                None => {
                    t.hour += 1;
                    t.minute = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> Local {
        Local { year, month, day, hour, minute }
    }

    fn cron(text: &str) -> Cron {
        match Schedule::parse(text).unwrap() {
            Schedule::Cron(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nightly_runs_at_two_every_day_across_month_and_year_ends() {
        let c = cron("0 2 * * *");
        assert_eq!(c.next_after(at(2026, 1, 31, 2, 0)), Some(at(2026, 2, 1, 2, 0)));
        assert_eq!(c.next_after(at(2026, 12, 31, 3, 0)), Some(at(2027, 1, 1, 2, 0)));
        assert_eq!(c.next_after(at(2026, 3, 10, 1, 59)), Some(at(2026, 3, 10, 2, 0)));
    }

    #[test]
    fn month_ends_leap_days_and_impossible_dates() {
        let last = cron("0 0 31 * *");
        assert_eq!(
            last.next_after(at(2026, 1, 31, 0, 0)),
            Some(at(2026, 3, 31, 0, 0)),
            "February and April have no 31st"
        );
        let leap = cron("0 12 29 2 *");
        assert_eq!(leap.next_after(at(2026, 1, 1, 0, 0)), Some(at(2028, 2, 29, 12, 0)));
        assert_eq!(cron("0 0 30 2 *").next_after(at(2026, 1, 1, 0, 0)), None, "February 30 never comes");
        assert!(!is_leap(2100) && is_leap(2000));
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let c = cron("*/15 9-17 * * mon-fri");
        assert_eq!(c.next_after(at(2026, 11, 27, 17, 45)), Some(at(2026, 11, 30, 9, 0)), "Friday evening to Monday");
        assert_eq!(c.next_after(at(2026, 11, 26, 9, 14)), Some(at(2026, 11, 26, 9, 15)));
        let list = cron("5,35 0 1 jan,jul *");
        assert_eq!(list.next_after(at(2026, 1, 1, 0, 5)), Some(at(2026, 1, 1, 0, 35)));
        assert_eq!(list.next_after(at(2026, 1, 1, 0, 35)), Some(at(2026, 7, 1, 0, 5)));
        assert_eq!(cron("0 0 * * 7").next_after(at(2026, 11, 26, 0, 0)), Some(at(2026, 11, 29, 0, 0)), "7 is Sunday");
    }

    #[test]
    fn both_day_fields_restricted_match_either() {
        // The 1st of the month or any Monday (Vixie cron).
        let c = cron("0 0 1 * 1");
        assert_eq!(c.next_after(at(2026, 11, 26, 0, 0)), Some(at(2026, 11, 30, 0, 0)), "Monday the 30th");
        assert_eq!(c.next_after(at(2026, 11, 30, 0, 0)), Some(at(2026, 12, 1, 0, 0)), "Tuesday the 1st");
    }

    #[test]
    fn weekdays_are_right() {
        assert_eq!(weekday(2026, 11, 26), 4, "a Thursday");
        assert_eq!(weekday(2000, 2, 29), 2, "a Tuesday");
        assert_eq!(weekday(1970, 1, 1), 4);
    }

    #[test]
    fn macros_intervals_and_errors() {
        assert_eq!(Schedule::parse("@daily").unwrap(), Schedule::parse("0 0 * * *").unwrap());
        assert_eq!(Schedule::parse("@every 30s").unwrap(), Schedule::Every(30_000_000));
        for (bad, says) in [
            ("0 2 * *", "4 fields"),
            ("60 * * * *", "minute field"),
            ("0 2 * * mon-sun", "day-of-week field"),
            ("*/0 * * * *", "step"),
            ("0 5-2 * * *", "backwards"),
            ("@every 10ms", "at least one second"),
            ("@every soon", "soon"),
            ("@fortnightly", "not a macro"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
