//! `subscriber provision | show | remove`: the queue over AMQP (as the operator), the user and
//! its permissions over the management API. What is granted is decided in [`crate::subscriber`].

use crate::args::{Cli, ProvisionArgs, SubscriberArgs, SubscriberCmd};
use crate::management::{AmqpTarget, Api, QueueInfo, User, amqp_target};
use crate::subscriber::{self, Plan, Provisioned, QueueState, Shown, UserChange, generate_password};
use crate::{EXIT_FAILURE, Report};
use anyhow::{Context, anyhow, bail};
use lapin::options::QueueBindOptions;
use lapin::types::FieldTable;
use messaging::broker::bounded;
use messaging::topology::{QueueSettings, declare_data_sharing, declare_shared, declare_work_queue};
use messaging::{Broker, BrokerConfig, Names};
use serde_json::json;
use std::fmt::Write as _;
use std::time::Duration;

struct Ctx<'a> {
    cli: &'a Cli,
    config: BrokerConfig,
    api: Api,
    target: AmqpTarget,
    names: Names,
    report: Report,
}

pub async fn run(cli: &Cli, args: &SubscriberArgs, config: BrokerConfig) -> anyhow::Result<Report> {
    let target = amqp_target(&cli.amqp_url)?;
    let api = args.api.api(cli)?;
    let ctx = Ctx {
        cli,
        config,
        api,
        target,
        names: Names::new(cli.prefix.clone()),
        report: Report::default(),
    };
    match &args.command {
        SubscriberCmd::Provision(a) => provision(ctx, a).await,
        SubscriberCmd::Show { name } => show(ctx, name).await,
        SubscriberCmd::Remove { name, force } => remove(ctx, name, *force).await,
    }
}

/// Users made through one broker's API for another broker's queue would leave the subscriber
/// locked out, or let it into the wrong broker.
fn different_brokers(ctx: &Ctx<'_>, queue: &str) -> anyhow::Error {
    anyhow!(
        "queue '{queue}' exists on the broker of --amqp-url ({}:{}) but the management API at {} does \
         not know it: --api-url and --amqp-url point at different brokers. No user or permission was \
         changed.",
        ctx.target.host,
        ctx.target.port,
        ctx.api.base()
    )
}

fn tags_of(user: &User) -> Vec<String> {
    user.tags.iter().filter(|t| !t.is_empty()).cloned().collect()
}

/// A subscriber user has no tags and is not the operator: never turn an administrator (say
/// `guest`, with an empty prefix) into a subscriber, nor delete it.
fn refuse_foreign_user(ctx: &Ctx<'_>, user: &str, existing: Option<&User>) -> anyhow::Result<()> {
    if user == ctx.api.user() || user == ctx.target.user {
        bail!("'{user}' is the user this tool is working as; a subscriber needs a user of its own");
    }
    if let Some(u) = existing {
        let tags = tags_of(u);
        if !tags.is_empty() {
            bail!(
                "user '{user}' already exists with tags [{}]: a subscriber user has none, so it is not \
                 one; nothing was changed (another name, or --prefix?)",
                tags.join(", ")
            );
        }
    }
    Ok(())
}

fn password_from_env(var: &str) -> anyhow::Result<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => bail!("--password-env {var}: the variable is empty; nothing was changed"),
        Err(_) => bail!("--password-env {var}: the variable is not set (or not UTF-8); nothing was changed"),
    }
}

async fn connect(ctx: &Ctx<'_>) -> anyhow::Result<Broker> {
    crate::commands::connect(ctx.cli, ctx.config.clone()).await
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}

/// Routing keys binding `queue` to `exchange`, as the API lists them.
async fn bindings_between(ctx: &Ctx<'_>, exchange: &str, queue: &str) -> anyhow::Result<Vec<String>> {
    let mut keys: Vec<String> = ctx
        .api
        .queue_bindings(&ctx.target.vhost, queue)
        .await?
        .into_iter()
        .filter(|b| b.source == exchange)
        .map(|b| b.routing_key)
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Declares the topology as the operator: the shared exchanges if missing, each line's
/// data-sharing hold queue with its shovel the first time, the quorum queue with its parking
/// lot, and (unless `unbound`, for a replay that binds it itself) exactly the requested
/// bindings on the subscribers' exchange.
async fn declare_queue(
    ctx: &Ctx<'_>,
    plan: &Plan,
    unbound: bool,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let broker = connect(ctx).await?;
    let result = async {
        let ch = broker.channel().await?;
        let timeout = broker.timeout();
        let settings = QueueSettings::default();
        declare_shared(&ch, &ctx.names, &settings, timeout)
            .await
            .context("declaring the shared exchanges")?;
        // The first subscriber on this broker (prefix): each line's hold queue and the shovel
        // that feeds the subscribers from it. Afterwards the services own the shovels' state
        // (removed while a freeze holds the line's data sharing).
        let mut new_holds = Vec::new();
        for line in contracts::Line::BUSINESS {
            let hold = ctx.names.data_sharing_hold(line);
            if !ctx.api.queue_exists(&ctx.target.vhost, &hold).await? {
                new_holds.push(line);
            }
        }
        declare_data_sharing(&ch, &ctx.names, timeout)
            .await
            .context("declaring the data-sharing hold queues")?;
        for line in new_holds {
            messaging::freeze::data_sharing::restore(&ctx.api, &ctx.names, line, &ctx.target.vhost)
                .await
                .with_context(|| {
                    format!(
                        "starting the {line} data-sharing shovel (is the rabbitmq_shovel plugin enabled?)"
                    )
                })?;
        }
        declare_work_queue(&ch, &plan.queue, &settings, timeout)
            .await
            .with_context(|| {
                format!(
                    "declaring queue '{}' (does it exist with other arguments?)",
                    plan.queue
                )
            })?;
        if !ctx.api.queue_exists(&ctx.target.vhost, &plan.queue).await? {
            return Err(different_brokers(ctx, &plan.queue));
        }
        if unbound {
            let _ = ch.close(200, "done".into()).await;
            return anyhow::Ok((Vec::new(), Vec::new()));
        }
        // A subscriber provisioned with a replay receives through its intake queue.
        let intake = subscriber::intake_queue(&ctx.names, &plan.name);
        let bound = if ctx.api.queue_exists(&ctx.target.vhost, &intake).await? {
            let shovel = subscriber::intake_shovel(&ctx.names, &plan.name);
            if ctx.api.shovel(&ctx.target.vhost, &shovel).await?.is_none() {
                ctx.api
                    .put_shovel(
                        &ctx.target.vhost,
                        &shovel,
                        &crate::replay::intake_shovel_definition(&ctx.names, &plan.name, &ctx.target.vhost),
                    )
                    .await
                    .context("putting the intake shovel back")?;
            }
            intake
        } else {
            plan.queue.clone()
        };
        let existing = bindings_between(ctx, &plan.bound_to, &bound).await?;
        let mut added = Vec::new();
        for key in plan.bindings.iter().filter(|k| !existing.contains(k)) {
            bounded(
                "queue.bind",
                timeout,
                ch.queue_bind(
                    bound.as_str().into(),
                    plan.bound_to.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
            added.push(key.clone());
        }
        let mut removed = Vec::new();
        // Provisioned before data sharing had its shovels: the queue was bound to the events
        // exchange itself, which would now deliver every event twice and never hold any.
        let events = ctx.names.events_exchange();
        for key in bindings_between(ctx, &events, &plan.queue).await? {
            bounded(
                "queue.unbind",
                timeout,
                ch.queue_unbind(
                    plan.queue.as_str().into(),
                    events.as_str().into(),
                    key.as_str().into(),
                    FieldTable::default(),
                ),
            )
            .await?;
            removed.push(format!("{key} (on {events})"));
        }
        for key in existing.iter().filter(|k| !plan.bindings.contains(k)) {
            bounded(
                "queue.unbind",
                timeout,
                ch.queue_unbind(
                    bound.as_str().into(),
                    plan.bound_to.as_str().into(),
                    key.as_str().into(),
                    FieldTable::default(),
                ),
            )
            .await?;
            removed.push(key.clone());
        }
        let _ = ch.close(200, "done".into()).await;
        anyhow::Ok((added, removed))
    }
    .await;
    broker.close().await;
    result
}

async fn provision(mut ctx: Ctx<'_>, a: &ProvisionArgs) -> anyhow::Result<Report> {
    let plan = subscriber::plan(&ctx.names, &a.name, &a.bindings, &a.publish);
    let vhost = ctx.target.vhost.clone();
    // Everything that can refuse is checked before anything is changed.
    let given_password = a.password_env.as_deref().map(password_from_env).transpose()?;
    let existing = ctx.api.user_info(&plan.user).await?;
    refuse_foreign_user(&ctx, &plan.user, existing.as_ref())?;

    let (bindings_added, bindings_removed, replayed) = match a.replay_from {
        None => {
            let (added, removed) = declare_queue(&ctx, &plan, false).await?;
            (added, removed, None)
        }
        Some(from) => {
            // A replay into a queue that already receives live events would give them twice.
            if ctx.api.queue_exists(&vhost, &plan.queue).await? {
                bail!(
                    "--replay-from is for a new subscriber, and queue '{}' exists: it already receives                      the live events, so a replay would give some of them twice. Nothing was changed                      ('subscriber remove {}' first, or provision without --replay-from)",
                    plan.queue,
                    plan.name
                );
            }
            declare_queue(&ctx, &plan, true).await?;
            let broker = connect(&ctx).await?;
            let mut catch_up = crate::replay::CatchUp::new(
                &ctx.api,
                &ctx.names,
                &vhost,
                &broker,
                &plan,
                from,
                Duration::from_secs(a.replay_wait),
            );
            let result = catch_up.run().await;
            for note in std::mem::take(&mut catch_up.notes) {
                let _ = writeln!(ctx.report.stderr, "note: {note}");
            }
            broker.close().await;
            let replayed = result.context("replaying the archive to the new subscriber")?;
            (plan.bindings.clone(), Vec::new(), Some(replayed))
        }
    };

    let (password, user_change, generated_password) = match (&existing, given_password) {
        (None, Some(pw)) => (Some(pw), UserChange::Created, None),
        (None, None) => {
            let pw = generate_password();
            (Some(pw.clone()), UserChange::Created, Some(pw))
        }
        (Some(_), Some(pw)) => (Some(pw), UserChange::PasswordSet, None),
        (Some(_), None) if a.rotate_password => {
            let pw = generate_password();
            (Some(pw.clone()), UserChange::PasswordSet, Some(pw))
        }
        (Some(_), None) => (None, UserChange::PasswordKept, None),
    };
    // The user (a new password, or the one it has), then its topic permissions before its
    // vhost permissions: it never holds write on an exchange without the routing-key limit.
    messaging::grants::put_user(
        &ctx.api,
        &vhost,
        &plan.user,
        password.as_deref(),
        "",
        &plan.permissions,
        &plan.topic_permissions,
    )
    .await
    .with_context(|| format!("setting up user '{}' on vhost '{vhost}'", plan.user))?;

    if existing.is_some() {
        let _ = writeln!(
            ctx.report.stderr,
            "note: channels of {} opened before this change may keep permissions they already used \
             (RabbitMQ caches checks per channel) until they are reopened",
            plan.user
        );
    }
    let done = Provisioned {
        plan,
        vhost,
        user_change,
        bindings_added,
        bindings_removed,
        generated_password,
        replayed,
    };
    ctx.report.stdout = if ctx.cli.json {
        to_json(&done)?
    } else {
        subscriber::provisioned_text(&done)
    };
    Ok(ctx.report)
}

fn queue_state(q: &QueueInfo) -> QueueState {
    QueueState {
        messages: q.message_count,
        // The API reports ready + unacknowledged = messages.
        ready: q.message_count.saturating_sub(q.unacknowledged_message_count),
        unacknowledged: q.unacknowledged_message_count,
        consumers: u64::from(q.consumer_count),
        kind: q.queue_type.clone(),
    }
}

/// `(exchange, routing key)` of every binding of `queue` but the default exchange's.
async fn queue_bindings(ctx: &Ctx<'_>, queue: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(ctx
        .api
        .queue_bindings(&ctx.target.vhost, queue)
        .await?
        .into_iter()
        // The default exchange's implicit binding says nothing.
        .filter(|b| !b.source.is_empty())
        .map(|b| (b.source, b.routing_key))
        .collect())
}

async fn show(mut ctx: Ctx<'_>, name: &str) -> anyhow::Result<Report> {
    let vhost = ctx.target.vhost.clone();
    let queue = ctx.names.subscriber_queue(name);
    let parking = Names::parking(&queue);
    let user = subscriber::user_name(&ctx.names, name);
    let api = &ctx.api;

    let state = api.queue(&vhost, &queue).await?.map(|q| queue_state(&q));
    let parking_messages = api.queue(&vhost, &parking).await?.map(|q| q.message_count);
    let mut bindings = queue_bindings(&ctx, &queue).await?;
    bindings.sort();
    let intake_name = subscriber::intake_queue(&ctx.names, name);
    let intake = match api.queue(&vhost, &intake_name).await? {
        None => None,
        Some(q) => Some(subscriber::Intake {
            queue: intake_name.clone(),
            messages: q.message_count,
            shovel: api
                .shovel(&vhost, &subscriber::intake_shovel(&ctx.names, name))
                .await?
                .is_some(),
        }),
    };
    if intake.is_some() {
        bindings.extend(queue_bindings(&ctx, &intake_name).await?);
        bindings.sort();
    }
    let user_info = api.user_info(&user).await?;
    let (permissions, topic_permissions) = if user_info.is_some() {
        (
            api.permissions(&vhost, &user).await?,
            api.topic_permissions(&vhost, &user).await?,
        )
    } else {
        (None, Vec::new())
    };
    if state.is_none() && user_info.is_none() {
        bail!(
            "no subscriber '{name}' on vhost '{vhost}': neither queue '{queue}' nor user '{user}' exists \
             (is --prefix right?)"
        );
    }
    let shown = Shown {
        name: name.to_owned(),
        vhost,
        queue,
        queue_state: state,
        parking,
        parking_messages,
        bindings,
        intake,
        user,
        user_tags: user_info.as_ref().map(tags_of),
        permissions,
        topic_permissions,
    };
    if shown.queue_state.is_none()
        || shown.user_tags.is_none()
        || shown.intake.as_ref().is_some_and(|i| !i.shovel)
    {
        ctx.report.code = EXIT_FAILURE;
        let _ = writeln!(
            ctx.report.stderr,
            "error: subscriber '{name}' is incomplete (see 'missing'); run 'subscriber provision' again"
        );
    }
    ctx.report.stdout = if ctx.cli.json {
        to_json(&shown)?
    } else {
        subscriber::shown_text(&shown)
    };
    Ok(ctx.report)
}

async fn remove(mut ctx: Ctx<'_>, name: &str, force: bool) -> anyhow::Result<Report> {
    let vhost = ctx.target.vhost.clone();
    // The work queue, its parking lot and its retry tiers, as `provision` declared them, and
    // the intake queue of a subscriber provisioned with a replay.
    let mut queues = subscriber::queues(&ctx.names, name);
    queues.push(subscriber::intake_queue(&ctx.names, name));
    let user = subscriber::user_name(&ctx.names, name);
    let existing = ctx.api.user_info(&user).await?;
    refuse_foreign_user(&ctx, &user, existing.as_ref())?;

    // Messages still waiting would be lost: count them over AMQP, exactly (the API's numbers
    // are statistics, a few seconds old), and refuse without --force.
    let broker = connect(&ctx).await?;
    let mut present = Vec::new();
    let mut waiting = Vec::new();
    let checked = async {
        for q in &queues {
            let api_state = ctx.api.queue(&vhost, q).await?;
            let ready = messaging::parking::depth(&broker, q).await.ok();
            match (api_state, ready) {
                (None, None) => {}
                (None, Some(_)) => return Err(different_brokers(&ctx, q)),
                (Some(state), ready) => {
                    let state = queue_state(&state);
                    let n = state
                        .messages
                        .max(ready.map_or(0, u64::from) + state.unacknowledged);
                    if n > 0 {
                        waiting.push(format!("{q}: {n}"));
                    }
                    present.push(q.clone());
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    broker.close().await;
    checked?;
    if !waiting.is_empty() && !force {
        bail!(
            "messages are still waiting ({}); nothing was removed. --force deletes them with the queues",
            waiting.join(", ")
        );
    }

    // The user first, so that it cannot reconnect; then its open connections; then the queues.
    let user_deleted = ctx.api.delete_user(&user).await?;
    let mut closed = 0;
    for c in ctx.api.connections_in(&vhost).await? {
        if c.username == user
            && ctx
                .api
                .close_connection(&c.name, "the subscriber was removed")
                .await?
        {
            closed += 1;
        }
    }
    // The intake shovel before its queue, or it would declare it again.
    let shovel_deleted = ctx
        .api
        .delete_shovel(&vhost, &subscriber::intake_shovel(&ctx.names, name))
        .await?;
    let mut deleted = Vec::new();
    for q in &present {
        if ctx.api.delete_queue(&vhost, q).await? {
            deleted.push(q.clone());
        }
    }

    let exchange = subscriber::own_exchange(&ctx.names, name);
    let exchange_deleted = ctx.api.delete_exchange(&vhost, &exchange).await?;
    if !user_deleted && deleted.is_empty() {
        let _ = writeln!(
            ctx.report.stderr,
            "note: no subscriber '{name}' on vhost '{vhost}' (no user '{user}', no queue): nothing to remove"
        );
    }
    ctx.report.stdout = if ctx.cli.json {
        to_json(&json!({
            "name": name,
            "user": user,
            "user_deleted": user_deleted,
            "connections_closed": closed,
            "queues_deleted": deleted,
            "intake_shovel_deleted": shovel_deleted,
            "exchange_deleted": exchange_deleted.then_some(&exchange),
            "messages_deleted": waiting,
        }))?
    } else {
        let mut out = String::new();
        if user_deleted {
            let _ = writeln!(
                out,
                "deleted user {user} and its permissions (closed {closed} connection(s))"
            );
        }
        if shovel_deleted {
            let _ = writeln!(
                out,
                "deleted shovel {}",
                subscriber::intake_shovel(&ctx.names, name)
            );
        }
        for q in &deleted {
            let _ = writeln!(out, "deleted queue {q}");
        }
        if exchange_deleted {
            let _ = writeln!(out, "deleted exchange {exchange}");
        }
        if !waiting.is_empty() {
            let _ = writeln!(out, "discarded messages ({})", waiting.join(", "));
        }
        out
    };
    Ok(ctx.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_as_the_api_lists_them() {
        let user = |tags: serde_json::Value| -> User {
            serde_json::from_value(json!({"name": "u", "tags": tags, "password_hash": "x"})).unwrap()
        };
        assert_eq!(tags_of(&user(json!(["administrator"]))), ["administrator"]);
        assert_eq!(
            tags_of(&user(json!(["management", "monitoring"]))),
            ["management", "monitoring"]
        );
        assert!(tags_of(&user(json!([]))).is_empty());
        assert!(tags_of(&user(json!([""]))).is_empty());
    }
}
