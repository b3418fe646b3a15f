//! Services running in process for a test, all under one cancellation token.
//!
//! Each service's tests build their own `Settings` (testkit cannot depend on the services it
//! serves) and hand the built runtime to [`Services::start`], which records its queues for
//! removal and runs it. This is the part every service's `tests/common` used to repeat.

use crate::{TestEnv, WAIT, wait_for};
use messaging::consumer::Handler;
use messaging::runtime::ServiceRuntime;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Services {
    pub shutdown: CancellationToken,
    pub tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The ops address of each service started, in start order.
    pub ops: Vec<SocketAddr>,
}

impl Services {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tracks the service's queues in `env` and runs it until [`Services::stop`].
    pub fn start<H: Handler>(&mut self, env: &TestEnv, app: ServiceRuntime<H>) -> &mut Self {
        env.track_queues(app.topology().owned_queues(app.names()));
        self.ops.push(app.ops_addr());
        self.tasks
            .push(tokio::spawn(app.run_until_stopped(self.shutdown.clone())));
        self
    }

    /// Graceful stop of all: waits for in-flight work and the relay flush of each, and fails
    /// the test if any of them ended with an error.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.await.expect("service task").expect("service ran cleanly");
        }
    }
}

/// Whether `queue` exists (a passive declare).
pub async fn queue_exists(env: &TestEnv, queue: &str) -> bool {
    let broker = env.broker();
    let ok = messaging::parking::depth(&broker, queue).await.is_ok();
    broker.close().await;
    ok
}

/// Waits until the control queue of every one of `services` exists and is consumed, so that a
/// control round expects each of their answers.
pub async fn wait_control_consumed(env: &TestEnv, services: &[&str]) {
    let names = env.names();
    wait_for("control queues consumed", WAIT, || async {
        for s in services {
            let q = names.control_queue(s);
            if !queue_exists(env, &q).await || env.consumer_count(&q).await == 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Sends one control message (a freeze order, lift, extend, …) to `target` (a service name)
/// and waits for that service's answer: once it has answered, the order is stored and in the
/// service's book, so what the test does next is judged under it.
pub async fn control(
    env: &TestEnv,
    target: &str,
    msg: &contracts::freeze::ControlMessage,
) -> contracts::Reply {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    let broker = env.broker();
    let ch = broker.channel().await.expect("a channel");
    ch.confirm_select(Default::default()).await.expect("confirms");
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("a reply queue");
    let mut replies = ch
        .basic_consume(
            q.name().clone(),
            "control-test".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("consuming replies");
    messaging::freeze::publish_control(
        &ch,
        &env.names(),
        WAIT,
        target,
        msg,
        Some(q.name().as_str()),
        "test",
    )
    .await
    .expect("control message published");
    let delivery = tokio::time::timeout(WAIT, replies.next())
        .await
        .unwrap_or_else(|_| panic!("{target} answers the control message within {WAIT:?}"))
        .expect("a reply")
        .expect("a delivery");
    let reply: contracts::Reply = serde_json::from_slice(&delivery.data).expect("a reply body");
    broker.close().await;
    reply
}

/// Publishes one control message to every service (`all`) without waiting for answers: for
/// tests that then wait on what the services store.
pub async fn broadcast_control(env: &TestEnv, msg: &contracts::freeze::ControlMessage) {
    let broker = env.broker();
    let ch = broker.channel().await.expect("a channel");
    ch.confirm_select(Default::default()).await.expect("confirms");
    messaging::freeze::publish_control(&ch, &env.names(), WAIT, "all", msg, None, "test")
        .await
        .expect("control message published");
    broker.close().await;
}
