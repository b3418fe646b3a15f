//! The end of the soak: thaw what is still frozen, let everything drain, then check and report.

use crate::faults::Log;
use crate::load::{City, db};
use crate::wire::{Book, Got, Kind, Wire};
use crate::{Settings, Suite};
use contracts::ReplyStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::reconcile::{Check, Schemas};

/// A request held by a freeze this close to the order's acknowledgement or the thaw's is
/// judged at the boundary (the order reaches each service a moment apart).
const SLACK: Duration = Duration::from_secs(5);

pub struct Report {
    pub checks: Vec<Check>,
    pub faults: Vec<crate::faults::Done>,
    pub revived: Vec<String>,
    /// op → outcome → count (final replies).
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    pub sent: usize,
    pub duplicates: usize,
    pub malformed: usize,
    pub deferred: usize,
    pub republished: u64,
    pub drain: Duration,
    pub latency: BTreeMap<String, (Duration, Duration, usize)>,
    pub seed: u64,
    pub started: chrono::DateTime<chrono::Utc>,
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_owned(),
        ok,
        detail: detail.into(),
    }
}

fn outcome(g: &Got) -> String {
    match (&g.reply.status, &g.reply.error) {
        (_, Some(e)) => format!("{:?} {}", g.reply.status, e.code).to_lowercase(),
        (s, None) => format!("{s:?}").to_lowercase(),
    }
}

pub async fn finish(
    s: &Settings,
    suite: &Suite,
    wire: &Wire,
    city: &City,
    log: &Log,
    started: chrono::DateTime<chrono::Utc>,
) -> Report {
    let t0 = Instant::now();
    let mut checks = vec![];
    // Thaw whatever is still in force (a lift that failed during the run), start whatever is down.
    for (_, _, _, id) in &log.freezes {
        let _ = suite.ctl(&["freeze", "lift", id]).await;
    }
    let mut revived = log.revived.clone();
    revived.extend(suite.revive().await);
    for name in crate::SERVICES {
        if let Err(e) = suite.restart(name).await {
            checks.push(check("every service ready at the end", false, format!("{e:#}")));
        }
    }

    // Every command answered.
    let deadline = Instant::now() + s.drain;
    let mut last_print = Instant::now();
    loop {
        let open = wire.unanswered();
        if open.is_empty() || Instant::now() >= deadline {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(30) {
            println!("soak: draining: {} commands without a final reply", open.len());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every queue empty (parking lots aside) twice in a row, and the outboxes drained.
    let mut quiet = 0;
    let mut depths = vec![];
    // Its own time, even when the wait for replies used all of the drain's.
    let queues_deadline = deadline.max(Instant::now() + Duration::from_secs(120));
    while Instant::now() < queues_deadline && quiet < 2 {
        depths = match suite.servers.api().await {
            Ok(api) => api.queue_depths("/").await.unwrap_or_default(),
            Err(_) => vec![],
        };
        let busy: Vec<_> = depths
            .iter()
            .filter(|(q, n)| !q.ends_with(".parking") && !q.ends_with(".archive") && *n > 0)
            .collect();
        quiet = if busy.is_empty() && !depths.is_empty() {
            quiet + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let busy: Vec<String> = depths
        .iter()
        .filter(|(q, n)| !q.ends_with(".parking") && !q.ends_with(".archive") && *n > 0)
        .map(|(q, n)| format!("{q}: {n}"))
        .collect();
    checks.push(check(
        "every queue drained (parking lots and the event archive aside)",
        busy.is_empty() && !depths.is_empty(),
        if busy.is_empty() {
            format!("{} queues empty", depths.len())
        } else {
            busy.join(", ")
        },
    ));
    let drain = t0.elapsed();

    // Replies.
    let seen = judge_replies(&wire.book.lock().expect("book"), log, &mut checks);

    match db(&suite.servers).await {
        Ok(db) => {
            for (name, sql, expected) in [
                (
                    "one person per enrolment answered ok",
                    "select id_number from enrollment.persons",
                    &seen.enrolled,
                ),
                (
                    "one employer per registration answered ok",
                    "select credit_code from enrollment.employers",
                    &seen.employers,
                ),
                (
                    "one payment per payment answered ok",
                    "select receipt_no from collection.payments",
                    &seen.receipts,
                ),
                (
                    "one settlement per settlement answered ok",
                    "select msgid from benefits.settlements",
                    &seen.settled,
                ),
                (
                    "one card application per application answered ok",
                    "select id_number from card.applications",
                    &seen.carded,
                ),
            ] {
                checks.push(effects(&db, name, sql, expected).await);
            }
            let schemas = Schemas::default();
            match testkit::reconcile::reconcile(&db, &schemas).await {
                Ok(c) => checks.extend(c),
                Err(e) => checks.push(check("reconciliation", false, format!("{e:#}"))),
            }
        }
        Err(e) => checks.push(check("the database answers at the end", false, format!("{e:#}"))),
    }

    // Parking lots: exactly the malformed messages sent.
    checks.push(parking(suite, &depths, &seen.malformed, &seen.answered_malformed).await);

    // Announcements: no phone got one text of an order twice.
    checks.push(announcements(&s.run_dir.join("sms.jsonl"), log));

    // Logs: no full ID or phone number.
    // The services' logs: the SMS centre's printout (a simulator of the operator's SMSC, whose
    // business is the number and the text) is not the suite's.
    let files: Vec<std::path::PathBuf> = crate::SERVICES
        .iter()
        .map(|svc| s.run_dir.join("logs").join(format!("{svc}.log")))
        .collect();
    let ids = city.ids.lock().expect("ids").clone();
    let phones = city.phones.lock().expect("phones").clone();
    match testkit::reconcile::scan_logs(&files, &ids, &phones) {
        Ok(c) => checks.push(c),
        Err(e) => checks.push(check(
            "no full ID or phone number in any log line",
            false,
            format!("{e:#}"),
        )),
    }

    let latency = seen
        .latency
        .into_iter()
        .map(|(line, mut v)| {
            v.sort();
            let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
            (line, (p(0.5), p(0.95), v.len()))
        })
        .collect();
    for c in &mut checks {
        let n = c.detail.lines().count();
        if n > 12 {
            c.detail = c.detail.lines().take(12).collect::<Vec<_>>().join("\n")
                + &format!("\n… ({} more lines)", n - 12);
        }
    }
    Report {
        checks,
        faults: log.done.clone(),
        revived,
        outcomes: seen.outcomes,
        sent: seen.sent,
        duplicates: seen.duplicates,
        malformed: seen.malformed.len(),
        deferred: seen.deferred,
        republished: seen.republished,
        drain,
        latency,
        seed: s.seed,
        started,
    }
}

/// What the replies say, judged command by command (checks pushed to `checks`).
fn judge_replies(book: &Book, log: &Log, checks: &mut Vec<Check>) -> Seen {
    let mut outcomes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let (mut lost, mut split, mut deferred, mut misheld) = (vec![], vec![], 0, vec![]);
    let mut latency: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for sent in book.sent.iter().filter(|s| s.kind == Kind::Normal) {
        let replies = book.replies.get(&sent.id).cloned().unwrap_or_default();
        let finals: Vec<&Got> = replies.iter().filter(|g| g.is_final()).collect();
        let Some(first_final) = finals.first() else {
            lost.push(format!("{} {} sent at {:.0?}", sent.key, sent.id, sent.at));
            continue;
        };
        let essences: BTreeSet<String> = finals.iter().map(|g| g.essence()).collect();
        if essences.len() > 1 {
            split.push(format!(
                "{} {}: {}",
                sent.key,
                sent.id,
                essences.into_iter().collect::<Vec<_>>().join(" | ")
            ));
        }
        *outcomes
            .entry(sent.op.to_owned())
            .or_default()
            .entry(outcome(first_final))
            .or_default() += 1;
        let first = &replies[0];
        let held = replies.iter().any(|g| g.reply.status == ReplyStatus::Deferred)
            || first_final.reply.status == ReplyStatus::Suspended;
        if held {
            deferred += 1;
            let in_window = log.freezes.iter().any(|(line, from, to, _)| {
                *line == sent.line && sent.at + SLACK >= *from && sent.at <= *to + SLACK
            });
            if !in_window {
                misheld.push(format!(
                    "{} sent at {:.0?} ({:?})",
                    sent.key, sent.at, first.reply.status
                ));
            }
        } else {
            latency
                .entry(format!("{}", sent.line))
                .or_default()
                .push(first.at.saturating_sub(sent.at));
        }
    }
    let normal = book.sent.iter().filter(|s| s.kind == Kind::Normal).count();
    checks.push(check(
        "every command got a final reply",
        lost.is_empty(),
        if lost.is_empty() {
            format!(
                "{normal} commands, {} resends of {} of them under their own id",
                book.duplicates.len(),
                book.duplicates.iter().collect::<BTreeSet<_>>().len()
            )
        } else {
            format!(
                "{} of {normal} unanswered, e.g. {}",
                lost.len(),
                lost.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        },
    ));
    checks.push(check(
        "exactly one final reply per command (resends answered the same)",
        split.is_empty(),
        if split.is_empty() {
            "every command's final replies agree".to_owned()
        } else {
            format!(
                "{} commands with differing final replies, e.g. {}",
                split.len(),
                split.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            )
        },
    ));
    checks.push(check(
        "held only by a freeze of its own line",
        misheld.is_empty(),
        if misheld.is_empty() {
            format!(
                "{deferred} requests held or refused, each inside a freeze of its line ({} freezes)",
                log.freezes.len()
            )
        } else {
            format!(
                "{} held outside any freeze of their line, e.g. {}",
                misheld.len(),
                misheld.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        },
    ));
    let internal: u64 = outcomes
        .values()
        .flat_map(|m| m.iter())
        .filter(|(k, _)| k.contains("internal"))
        .map(|(_, n)| n)
        .sum();
    checks.push(check(
        "no INTERNAL replies",
        internal == 0,
        format!("{internal} INTERNAL final replies"),
    ));
    checks.push(check(
        "every command reached its queue",
        book.unroutable == 0,
        format!(
            "{} returned unroutable; {} replies to no command of this soak",
            book.unroutable, book.strangers
        ),
    ));

    // Effects: one per command that was answered ok.
    let ok_bodies = |op: &str| -> Vec<serde_json::Value> {
        book.sent
            .iter()
            .filter(|s| s.op == op && s.kind == Kind::Normal)
            .filter(|s| {
                book.replies
                    .get(&s.id)
                    .and_then(|v| v.iter().find(|g| g.is_final()))
                    .is_some_and(|g| g.reply.status == ReplyStatus::Ok)
            })
            .filter_map(|s| serde_json::from_slice(&s.body).ok())
            .collect()
    };
    let field = |v: &[serde_json::Value], f: &str| -> BTreeSet<String> {
        v.iter()
            .filter_map(|b| b.get(f).and_then(|x| x.as_str()).map(str::to_owned))
            .collect()
    };
    let enrolled = field(&ok_bodies("enroll-person"), "id_number");
    let employers = field(&ok_bodies("register-employer"), "credit_code");
    let receipts = field(&ok_bodies("record-payment"), "tax_receipt_no");
    let settled = field(&ok_bodies("settle"), "msgid");
    let carded = field(&ok_bodies("apply-card"), "id_number");
    let malformed: BTreeSet<String> = book
        .sent
        .iter()
        .filter(|s| s.kind == Kind::Malformed)
        .map(|s| s.id.to_string())
        .collect();
    // Malformed messages answered MALFORMED_MESSAGE (an envelope that could be read, with a
    // reply address: the sender is told), by id.
    let answered_malformed: BTreeSet<String> = book
        .sent
        .iter()
        .filter(|s| s.kind == Kind::Malformed)
        .filter(|s| {
            book.replies.get(&s.id).is_some_and(|v| {
                v.iter().any(|g| {
                    g.reply
                        .error
                        .as_ref()
                        .is_some_and(|e| e.code == contracts::ErrorCode::MalformedMessage)
                })
            })
        })
        .map(|s| s.id.to_string())
        .collect();
    let sent = book.sent.len();
    let duplicates = book.duplicates.len();
    let republished = book.republished;
    Seen {
        outcomes,
        deferred,
        latency,
        enrolled,
        employers,
        receipts,
        settled,
        carded,
        malformed,
        answered_malformed,
        sent,
        duplicates,
        republished,
    }
}

/// What [`judge_replies`] found.
struct Seen {
    /// op → outcome → count (final replies).
    outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    deferred: usize,
    latency: BTreeMap<String, Vec<Duration>>,
    /// Of the commands answered `ok`: the ID numbers enrolled, employers registered, receipts
    /// paid, settlements' msgids, ID numbers applying for a card.
    enrolled: BTreeSet<String>,
    employers: BTreeSet<String>,
    receipts: BTreeSet<String>,
    settled: BTreeSet<String>,
    carded: BTreeSet<String>,
    malformed: BTreeSet<String>,
    answered_malformed: BTreeSet<String>,
    sent: usize,
    duplicates: usize,
    republished: u64,
}

/// The rows `sql` lists against the commands answered ok: the same set, each once.
async fn effects(db: &tokio_postgres::Client, name: &str, sql: &str, expected: &BTreeSet<String>) -> Check {
    let rows = match db.query(sql, &[]).await {
        Ok(r) => r,
        Err(e) => return check(name, false, format!("{sql}: {e}")),
    };
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for r in rows {
        *seen.entry(r.get::<_, String>(0)).or_default() += 1;
    }
    let twice: Vec<&String> = seen.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k).collect();
    let missing: Vec<&String> = expected.iter().filter(|k| !seen.contains_key(*k)).collect();
    let extra: Vec<&String> = seen.keys().filter(|k| !expected.contains(*k)).collect();
    let ok = twice.is_empty() && missing.is_empty() && extra.is_empty();
    check(
        name,
        ok,
        if ok {
            format!("{} answered ok, {} rows", expected.len(), seen.len())
        } else {
            format!(
                "{} answered ok, {} rows; twice: {:?}; answered ok without a row: {:?}; a row without an ok: {:?}",
                expected.len(),
                seen.len(),
                twice.iter().take(5).collect::<Vec<_>>(),
                missing.iter().take(5).collect::<Vec<_>>(),
                extra.iter().take(5).collect::<Vec<_>>()
            )
        },
    )
}

async fn parking(
    suite: &Suite,
    depths: &[(String, u64)],
    malformed: &BTreeSet<String>,
    answered: &BTreeSet<String>,
) -> Check {
    let name = "parking lots hold only the malformed messages injected; each of those parked or answered MALFORMED_MESSAGE";
    let api = match suite.servers.api().await {
        Ok(a) => a,
        Err(e) => return check(name, false, format!("{e:#}")),
    };
    let mut parked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unnamed = 0;
    for (q, n) in depths.iter().filter(|(q, n)| q.ends_with(".parking") && *n > 0) {
        match api.peek("/", q, (*n).min(5000) as u32).await {
            Ok(msgs) => {
                for m in msgs {
                    match m.get("message_id").and_then(|v| v.as_str()) {
                        Some(id) => parked.entry(id.to_owned()).or_default().push(q.clone()),
                        None => unnamed += 1,
                    }
                }
            }
            Err(e) => return check(name, false, format!("{q}: {e:#}")),
        }
    }
    let neither: Vec<&String> = malformed
        .iter()
        .filter(|id| !parked.contains_key(*id) && !answered.contains(*id))
        .collect();
    let others: Vec<String> = parked
        .iter()
        .filter(|(id, _)| !malformed.contains(*id))
        .map(|(id, qs)| format!("{id} in {}", qs.join(",")))
        .collect();
    let twice: Vec<&String> = parked
        .iter()
        .filter(|(_, qs)| qs.len() > 1)
        .map(|(id, _)| id)
        .collect();
    let ok = neither.is_empty() && others.is_empty() && twice.is_empty() && unnamed == 0;
    let both = malformed
        .iter()
        .filter(|id| parked.contains_key(*id) && answered.contains(*id))
        .count();
    check(
        name,
        ok,
        format!(
            "{} injected: {} parked, {} answered MALFORMED_MESSAGE ({both} both); {} messages in parking lots{}",
            malformed.len(),
            malformed.iter().filter(|id| parked.contains_key(*id)).count(),
            answered.len(),
            parked.values().map(Vec::len).sum::<usize>() + unnamed,
            if ok {
                String::new()
            } else {
                format!(
                    "; neither parked nor answered: {:?}; parked but not injected: {:?}; parked twice: {:?}; without a message id: {unnamed}",
                    neither.iter().take(5).collect::<Vec<_>>(),
                    others.iter().take(5).collect::<Vec<_>>(),
                    twice.iter().take(5).collect::<Vec<_>>()
                )
            }
        ),
    )
}

fn announcements(sms: &Path, log: &Log) -> Check {
    let name = "each announcement text sent once to each phone";
    let text = std::fs::read_to_string(sms).unwrap_or_default();
    let mut count: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut total = 0;
    let mut phones = BTreeSet::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(to), Some(t)) = (v["destination"].as_str(), v["text"].as_str()) else {
            continue;
        };
        if t.contains("演练：") {
            total += 1;
            phones.insert(to.to_owned());
            *count.entry((to.to_owned(), t.to_owned())).or_default() += 1;
        }
    }
    let twice: Vec<String> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((p, t), n)| format!("{n}× to {}…: {t}", &p[..3]))
        .collect();
    check(
        name,
        twice.is_empty() && (log.freezes.is_empty() || total > 0),
        format!(
            "{total} announcement texts of {} orders to {} phones{}",
            log.freezes.len(),
            phones.len(),
            if twice.is_empty() {
                String::new()
            } else {
                format!(
                    "; twice: {}",
                    twice.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                )
            }
        ),
    )
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok) && self.faults.iter().all(|f| f.ok)
    }

    pub fn markdown(&self, s: &Settings, load: Duration) -> String {
        let mut out = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# Soak report: seed {}, {} ({})\n",
            self.seed,
            self.started.format("%Y-%m-%d %H:%M UTC"),
            if self.ok() { "CLEAN" } else { "NOT CLEAN" }
        );
        let _ = writeln!(
            out,
            "Load {:.0} min ({} workers), drain {:.0?}; {} messages sent ({} resends as duplicates, {} malformed), {} publishes repeated before their confirm; {} requests held or refused by freezes.\n",
            load.as_secs_f64() / 60.0,
            s.workers,
            self.drain,
            self.sent,
            self.duplicates,
            self.malformed,
            self.republished,
            self.deferred
        );
        let _ = writeln!(
            out,
            "## Faults ({})\n\n| at | fault | took | outcome |\n|---|---|---|---|",
            self.faults.len()
        );
        for f in &self.faults {
            let _ = writeln!(
                out,
                "| {:.0}s | {} | {:.1?} | {}{} |",
                f.at.as_secs_f64(),
                f.fault,
                f.took,
                if f.ok { "" } else { "**failed** " },
                f.outcome.replace('|', "/")
            );
        }
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.faults {
            *kinds.entry(f.fault.kind()).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "\nBy kind: {}\n",
            kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.revived.is_empty() {
            let _ = writeln!(out, "Exited by themselves: {}\n", self.revived.join("; "));
        }
        let _ = writeln!(
            out,
            "## Requests by final outcome\n\n| request | outcomes |\n|---|---|"
        );
        for (op, o) in &self.outcomes {
            let _ = writeln!(
                out,
                "| {op} | {} |",
                o.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\nFirst-reply latency of requests not held (wall clock, under the faults):"
        );
        for (line, (p50, p95, n)) in &self.latency {
            let _ = writeln!(out, "- {line}: median {p50:.0?}, p95 {p95:.0?} ({n} requests)");
        }
        let _ = writeln!(out, "\n## Checks\n");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "- [{}] {}: {}",
                if c.ok { "x" } else { " " },
                c.name,
                c.detail.replace('\n', "\n  ")
            );
        }
        out
    }

    pub fn summary(&self, s: &Settings, load: Duration, run_dir: &Path) -> String {
        let machine = testkit::machine::Machine::detect();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.faults {
            *kinds.entry(f.fault.kind()).or_default() += 1;
        }
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        let mut out = format!(
            "\n## Soak, {}: seed {}, {:.0} min, {}\n\nMachine: {}. Commit {}. `make soak SOAK_MINUTES={} SOAK_SEED={}`; three RabbitMQ nodes and a private Postgres (`scripts/soak-servers.sh`), the five services and the SMS centre as processes, {} workers.\n\n",
            self.started.format("%Y-%m-%d"),
            self.seed,
            load.as_secs_f64() / 60.0,
            if self.ok() {
                "report clean"
            } else {
                "report NOT clean"
            },
            machine.describe(),
            machine.commit,
            s.minutes,
            self.seed,
            s.workers,
        );
        out += &format!(
            "- Faults: {} ({}).\n- Messages: {} sent, {} duplicates, {} malformed; {} held or refused by freezes; drained in {:.0?}.\n",
            self.faults.len(),
            kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.sent,
            self.duplicates,
            self.malformed,
            self.deferred,
            self.drain
        );
        for (line, (p50, p95, n)) in &self.latency {
            out += &format!("- {line} line first replies not held: median {p50:.0?}, p95 {p95:.0?} ({n}).\n");
        }
        out += &format!(
            "- Checks: {} of {} hold{}.\n- Report: `{}`.\n",
            self.checks.iter().filter(|c| c.ok).count(),
            self.checks.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failing: {}", failed.join("; "))
            },
            run_dir
                .join("report.md")
                .strip_prefix(&s.root)
                .unwrap_or(run_dir)
                .display()
        );
        out += "\n| check | figures |\n|---|---|\n";
        for c in &self.checks {
            out += &format!(
                "| {}{} | {} |\n",
                if c.ok { "" } else { "**FAILED** " },
                c.name,
                c.detail.replace('|', "/").replace('\n', "<br>")
            );
        }
        out
    }
}

/// Appends `summary` to BENCHMARKS.md.
pub fn append_summary(file: &Path, summary: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(file)?;
    f.write_all(summary.as_bytes())?;
    Ok(())
}
