//! The subcommands: talk to the broker through the messaging crate, hand text to `render`.

use crate::args::{Cli, Cmd, NotificationsCmd, ParkedCmd, QueuesCmd, ReplayArgs, SendArgs};
use crate::{APP_ID, EXIT_FAILURE, Report, queues, render};
use anyhow::{Context, anyhow, bail};
use messaging::broker::BrokerError;
use messaging::client::{ClientError, Command, CommandClient};
use messaging::parking;
use messaging::{Broker, BrokerConfig, Names};
use std::fmt::Write as _;
use std::io::Read;
use std::time::Duration;
use uuid::Uuid;

pub async fn run(cli: Cli, stdin: &mut dyn Read) -> anyhow::Result<Report> {
    let config = BrokerConfig {
        url: cli.amqp_url.clone(),
        prefix: cli.prefix.clone(),
        timeout_ms: cli.timeout.saturating_mul(1000),
        tls: Default::default(),
    };
    match &cli.command {
        Cmd::Send(args) => send(&cli, config, args, stdin).await,
        Cmd::Parked(cmd) => {
            let broker = connect(&cli, config).await?;
            let result = parked(&cli, &broker, cmd).await;
            broker.close().await;
            result
        }
        Cmd::Queues(QueuesCmd::Depth { queues }) => {
            let broker = connect(&cli, config).await?;
            let result = depth(&cli, &broker, queues).await;
            broker.close().await;
            result
        }
        Cmd::Subscriber(args) => crate::provisioning::run(&cli, args, config).await,
        Cmd::Outbox(cmd) => crate::outbox::run(&cli, cmd).await,
        Cmd::Freeze(args) => crate::freeze::run(&cli, args, config).await,
        Cmd::Receipt(cmd) => crate::freeze::receipt(&cli, cmd, config).await,
        Cmd::Notifications(cmd) => notifications(&cli, config, cmd).await,
        Cmd::Topology(cmd) => crate::topology::run(&cli, cmd).await,
        Cmd::Accounts(cmd) => crate::accounts::run(&cli, cmd).await,
    }
}

/// `notifications list`: `common.notification.list-notifications`, rendered.
async fn notifications(cli: &Cli, config: BrokerConfig, cmd: &NotificationsCmd) -> anyhow::Result<Report> {
    let NotificationsCmd::List {
        person,
        credit_code,
        announcement,
        limit,
    } = cmd;
    let body = serde_json::json!({
        "id_number": person, "credit_code": credit_code, "announcement": announcement, "limit": limit,
    });
    let body: serde_json::Map<String, serde_json::Value> = body
        .as_object()
        .expect("an object")
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let command = Command::new(
        contracts::Line::Common,
        contracts::notification::SERVICE,
        "list-notifications",
        &serde_json::Value::Object(body),
    );
    let client = client(cli, config).await?;
    let sent = client.send(&command, Duration::from_secs(cli.timeout)).await;
    client.close().await;
    let reply = sent.map_err(|e| match e {
        ClientError::NoReply(_) => anyhow!(
            "no reply from the notification service within {}s: is it running?",
            cli.timeout
        ),
        other => anyhow::Error::new(other).context("asking the notification service failed"),
    })?;
    if cli.json || !reply.is_ok() {
        let stdout = if cli.json {
            render::reply_json(&reply)
        } else {
            render::reply_text(&command.routing_key(), &Uuid::nil(), &reply)
        };
        return Ok(Report {
            stdout,
            stderr: String::new(),
            code: render::exit_code(reply.status),
        });
    }
    let list: contracts::notification::NotificationList =
        serde_json::from_value(reply.result.unwrap_or_default()).context("the service's answer")?;
    Ok(Report::out(render::notifications_text(&list)))
}

/// A command client with its reply queue; "broker unreachable" said as such.
async fn client(cli: &Cli, config: BrokerConfig) -> anyhow::Result<CommandClient> {
    CommandClient::connect(config, APP_ID).await.map_err(|e| match e {
        ClientError::Broker(b) if is_connect_error(&b) => broker_unreachable(cli, b),
        other => anyhow::Error::new(other).context("cannot set up a reply queue on the broker"),
    })
}

/// Connects up front so that "broker unreachable" is reported as such, not as a failed get.
pub(crate) async fn connect(cli: &Cli, config: BrokerConfig) -> anyhow::Result<Broker> {
    let broker = Broker::new(config, APP_ID);
    match broker.channel().await {
        Ok(ch) => {
            let _ = ch.close(200, "connected".into()).await;
            Ok(broker)
        }
        Err(e) => Err(broker_unreachable(cli, e)),
    }
}

/// `amqp://user:secret@host` → `amqp://user:***@host`: URLs end up in error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

fn is_connect_error(e: &BrokerError) -> bool {
    matches!(
        e,
        BrokerError::Amqp { op: "connect", .. } | BrokerError::Timeout("connect", _)
    )
}

fn broker_unreachable(cli: &Cli, e: BrokerError) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "cannot reach the broker at {} (check --amqp-url / AMQP_URL)",
        redact_url(&cli.amqp_url)
    ))
}

fn read_body(args: &SendArgs, stdin: &mut dyn Read) -> anyhow::Result<Vec<u8>> {
    if let Some(b) = &args.body {
        return Ok(b.clone().into_bytes());
    }
    if let Some(path) = &args.file {
        return std::fs::read(path).with_context(|| format!("cannot read --file {}", path.display()));
    }
    if args.stdin.is_some() {
        let mut buf = Vec::new();
        stdin
            .read_to_end(&mut buf)
            .context("cannot read the body from standard input")?;
        return Ok(buf);
    }
    Ok(b"{}".to_vec())
}

/// Checks that `body` is JSON unless `--raw`: a typo should not travel to the parking lot.
pub fn check_body(body: &[u8], raw: bool) -> anyhow::Result<()> {
    if raw {
        return Ok(());
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .map(drop)
        .map_err(|e| anyhow!("the body is not valid JSON: {e} (nothing was sent; --raw sends it anyway)"))
}

async fn send(
    cli: &Cli,
    config: BrokerConfig,
    args: &SendArgs,
    stdin: &mut dyn Read,
) -> anyhow::Result<Report> {
    let body = read_body(args, stdin)?;
    check_body(&body, args.raw)?;
    let message_id = args.message_id.unwrap_or_else(Uuid::now_v7);
    let cmd = Command {
        line: args.line.into(),
        service: args.service.clone(),
        name: args.command.clone(),
        body,
        message_id: Some(message_id),
        channel: Some(args.channel.into()),
        operator: args.operator.clone(),
    };
    let routing_key = cmd.routing_key();
    let exchange = Names::new(cli.prefix.clone()).commands_exchange();
    let wait = Duration::from_secs(cli.timeout);

    let client = client(cli, config).await?;
    let sent = client.send(&cmd, wait).await;
    client.close().await;

    let reply = sent.map_err(|e| match e {
        ClientError::NoReply(_) => anyhow!(
            "no reply to {routing_key} within {}s (message {message_id}). The command may still be \
             processed: is the {} service running? Send again with --message-id {message_id} to get \
             its reply without doing it twice.",
            cli.timeout,
            args.service
        ),
        ClientError::Broker(BrokerError::Returned(_)) => anyhow!(
            "unroutable: no queue takes '{routing_key}' on exchange '{exchange}'. Is the {} service \
             deployed for the {} line, and is --prefix right? Nothing was sent.",
            args.service,
            cmd.line
        ),
        other => anyhow::Error::new(other).context(format!(
            "sending {routing_key} (message {message_id}) through exchange '{exchange}' failed"
        )),
    })?;
    let stdout = if cli.json {
        render::reply_json(&reply)
    } else {
        render::reply_text(&routing_key, &message_id, &reply)
    };
    Ok(Report {
        stdout,
        stderr: String::new(),
        code: render::exit_code(reply.status),
    })
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}

/// Messages in `queue`; names the queue when it does not exist.
async fn queue_depth(broker: &Broker, queue: &str) -> anyhow::Result<u32> {
    parking::depth(broker, queue)
        .await
        .with_context(|| format!("cannot read queue '{queue}' (does it exist? is --prefix right?)"))
}

async fn parked(cli: &Cli, broker: &Broker, cmd: &ParkedCmd) -> anyhow::Result<Report> {
    match cmd {
        ParkedCmd::List { queue, limit } => {
            let lot = queues::parking_name(&cli.prefix, queue);
            let total = queue_depth(broker, &lot).await?;
            let messages = parking::list(broker, &lot, *limit as usize)
                .await
                .with_context(|| format!("cannot list '{lot}'"))?;
            Ok(Report::out(if cli.json {
                to_json(&messages)?
            } else {
                render::parked_table(&lot, &messages, Some(total))
            }))
        }
        ParkedCmd::Show { queue, message_id } => {
            let lot = queues::parking_name(&cli.prefix, queue);
            let found = find_parked(broker, &lot, message_id).await?;
            if found.is_empty() {
                bail!("no message with id {message_id} in '{lot}'");
            }
            Ok(Report::out(if cli.json {
                to_json(&found)?
            } else {
                found
                    .iter()
                    .map(render::parked_detail)
                    .collect::<Vec<_>>()
                    .join("\n")
            }))
        }
        ParkedCmd::Replay(args) => replay(cli, broker, args).await,
    }
}

/// Every parked message of `lot` with `message_id` (normally one).
async fn find_parked(
    broker: &Broker,
    lot: &str,
    message_id: &str,
) -> anyhow::Result<Vec<parking::ParkedMessage>> {
    let total = queue_depth(broker, lot).await?;
    let all = parking::list(broker, lot, total as usize)
        .await
        .with_context(|| format!("cannot read '{lot}'"))?;
    Ok(all
        .into_iter()
        .filter(|m| m.message_id.as_deref() == Some(message_id))
        .collect())
}

async fn replay(cli: &Cli, broker: &Broker, args: &ReplayArgs) -> anyhow::Result<Report> {
    let lot = queues::parking_name(&cli.prefix, &args.queue);
    // Fail on a wrong name before touching anything.
    queue_depth(broker, &lot).await?;
    let id = args.message_id.as_deref();
    if id.is_none() && !args.all {
        // clap enforces this too; the library refuses on its own as well.
        bail!("name a message id to replay, or --all");
    }
    let replayed = parking::replay(broker, &lot, id)
        .await
        .with_context(|| format!("replaying from '{lot}' failed"))?;

    let mut report = Report::out(if cli.json {
        to_json(&serde_json::json!({ "queue": lot, "replayed": replayed }))?
    } else {
        format!("replayed {replayed} message(s) from {lot}\n")
    });
    match id {
        Some(id) if replayed == 0 => {
            let found = find_parked(broker, &lot, id).await?;
            report.code = EXIT_FAILURE;
            report.stderr = match found.first() {
                None => format!("error: no message with id {id} in '{lot}'\n"),
                Some(m) if m.parked_from.is_none() => format!(
                    "error: message {id} has no x-parked-from header (dead-lettered by the broker, \
                     e.g. after its delivery limit), so it cannot be replayed with this tool\n"
                ),
                Some(m) => format!(
                    "error: message {id} could not be republished to '{}' (does that queue exist?)\n",
                    m.parked_from.as_deref().unwrap_or_default()
                ),
            };
        }
        Some(_) => {}
        None => {
            let left = queue_depth(broker, &lot).await?;
            if left > 0 {
                let _ = writeln!(
                    report.stderr,
                    "note: {left} message(s) are still in '{lot}' (no x-parked-from header, their \
                     queue refused them, or they were parked again); see `insurancectl parked list {}`",
                    args.queue
                );
            }
        }
    }
    Ok(report)
}

async fn depth(cli: &Cli, broker: &Broker, given: &[String]) -> anyhow::Result<Report> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let mut report = Report::default();
    for q in given {
        let name = queues::full_name(&cli.prefix, q);
        match queue_depth(broker, &name).await {
            Ok(n) => {
                json.push(serde_json::json!({ "queue": name, "messages": n }));
                rows.push((name, n));
            }
            Err(e) => {
                report.code = EXIT_FAILURE;
                let text = crate::error_text(&e);
                let _ = writeln!(report.stderr, "error: {text}");
                json.push(serde_json::json!({ "queue": name, "error": text }));
            }
        }
    }
    report.stdout = if cli.json {
        to_json(&json)?
    } else if rows.is_empty() {
        String::new()
    } else {
        render::depth_table(&rows)
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("amqps://svc:p@ss@mq.example:5671/prod"),
            "amqps://svc:***@mq.example:5671/prod"
        );
        assert_eq!(redact_url("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(redact_url("amqp://user@host/v"), "amqp://user@host/v");
    }

    #[test]
    fn bodies_are_checked_unless_raw() {
        assert!(check_body(br#"{"id_number": "1"}"#, false).is_ok());
        let err = check_body(b"{id_number: 1}", false).unwrap_err().to_string();
        assert!(err.contains("not valid JSON") && err.contains("--raw"), "{err}");
        assert!(check_body(b"{id_number: 1}", true).is_ok());
    }
}
