//! Sends commands and waits for their replies, as a back-office system would. Used by the
//! command-line client and by tests.

use crate::broker::{Broker, BrokerConfig, BrokerError, bounded, publish_confirmed};
use crate::envelope::properties;
use crate::names::Names;
use contracts::{Channel as RequestChannel, Line, Reply, headers as h};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// One command to send.
#[derive(Debug, Clone)]
pub struct Command {
    pub line: Line,
    pub service: String,
    pub name: String,
    /// Raw body bytes, so that tests can send malformed JSON too.
    pub body: Vec<u8>,
    /// The idempotency key; send the same id again to get the stored reply.
    pub message_id: Option<Uuid>,
    pub channel: Option<RequestChannel>,
    pub operator: Option<String>,
}

impl Command {
    pub fn new(line: Line, service: &str, name: &str, body: &serde_json::Value) -> Self {
        Command {
            line,
            service: service.to_owned(),
            name: name.to_owned(),
            body: serde_json::to_vec(body).unwrap_or_default(),
            message_id: None,
            channel: Some(RequestChannel::Counter),
            operator: None,
        }
    }

    pub fn with_message_id(mut self, id: Uuid) -> Self {
        self.message_id = Some(id);
        self
    }

    pub fn routing_key(&self) -> String {
        format!("{}.{}.{}", self.line, self.service, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("no reply within {0:?}")]
    NoReply(Duration),
    #[error("the reply could not be read: {0}")]
    BadReply(String),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Reply, String>>>>>;

/// A connection with a private reply queue; replies are matched by correlation id.
pub struct CommandClient {
    broker: Broker,
    channel: Channel,
    names: Names,
    reply_queue: String,
    pending: Pending,
    reader: tokio::task::JoinHandle<()>,
}

impl CommandClient {
    pub async fn connect(config: BrokerConfig, app_id: &str) -> Result<Self, ClientError> {
        let names = Names::new(config.prefix.clone());
        let broker = Broker::new(config, app_id);
        let timeout = broker.timeout();
        let channel = broker.channel().await?;
        bounded(
            "confirm.select",
            timeout,
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        // Exclusive, server-named: the reply queue lives as long as this client.
        let opts = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let q = bounded(
            "queue.declare",
            timeout,
            channel.queue_declare("".into(), opts, FieldTable::default()),
        )
        .await?;
        let reply_queue = q.name().to_string();
        let consume_opts = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut consumer = bounded(
            "basic.consume",
            timeout,
            channel.basic_consume(
                reply_queue.as_str().into(),
                "".into(),
                consume_opts,
                FieldTable::default(),
            ),
        )
        .await?;
        let pending: Pending = Arc::default();
        let p = pending.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let Some(corr) = d.properties.correlation_id().as_ref().map(|c| c.to_string()) else {
                    continue;
                };
                let reply = serde_json::from_slice::<Reply>(&d.data).map_err(|e| e.to_string());
                if let Some(tx) = p.lock().expect("pending lock").remove(&corr) {
                    let _ = tx.send(reply);
                }
            }
        });
        Ok(CommandClient {
            broker,
            channel,
            names,
            reply_queue,
            pending,
            reader,
        })
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Sends `cmd` and waits up to `wait` for its reply.
    pub async fn send(&self, cmd: &Command, wait: Duration) -> Result<Reply, ClientError> {
        let message_id = cmd.message_id.unwrap_or_else(Uuid::now_v7);
        let mut headers = BTreeMap::new();
        if let Some(c) = cmd.channel {
            headers.insert(h::CHANNEL.to_owned(), c.as_str().to_owned());
        }
        if let Some(op) = &cmd.operator {
            headers.insert(h::OPERATOR.to_owned(), op.clone());
        }
        crate::trace::inject_or_start(&mut headers);
        let message_type = format!("{}.{}.v1", cmd.service, cmd.name);
        let props = properties(
            message_id,
            &message_type,
            None,
            Some(&self.reply_queue),
            self.broker.app_id(),
            headers,
        );
        self.send_raw(&cmd.routing_key(), props, &cmd.body, wait).await
    }

    /// Publishes with the given properties (a fresh correlation id is set) and waits for the
    /// reply: lets tests send messages with a broken envelope.
    pub async fn send_raw(
        &self,
        routing_key: &str,
        props: BasicProperties,
        body: &[u8],
        wait: Duration,
    ) -> Result<Reply, ClientError> {
        let correlation = Uuid::now_v7().to_string();
        let props = props
            .with_correlation_id(correlation.as_str().into())
            .with_reply_to(self.reply_queue.as_str().into());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending lock")
            .insert(correlation.clone(), tx);
        let exchange = self.names.commands_exchange();
        // mandatory: a command that reaches no queue is reported instead of waiting forever.
        let sent = publish_confirmed(
            &self.channel,
            self.broker.timeout(),
            &exchange,
            routing_key,
            true,
            body,
            props,
        )
        .await;
        if let Err(e) = sent {
            self.pending.lock().expect("pending lock").remove(&correlation);
            return Err(match e {
                BrokerError::Returned(why) => {
                    BrokerError::Returned(format!("no queue for '{routing_key}' ({why})"))
                }
                other => other,
            }
            .into());
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(e))) => Err(ClientError::BadReply(e)),
            Ok(Err(_)) | Err(_) => {
                self.pending.lock().expect("pending lock").remove(&correlation);
                Err(ClientError::NoReply(wait))
            }
        }
    }

    /// Publishes without waiting for a reply (fire and forget, still confirmed).
    pub async fn publish(&self, cmd: &Command) -> Result<Uuid, ClientError> {
        let message_id = cmd.message_id.unwrap_or_else(Uuid::now_v7);
        let message_type = format!("{}.{}.v1", cmd.service, cmd.name);
        let props = properties(
            message_id,
            &message_type,
            None,
            None,
            self.broker.app_id(),
            BTreeMap::new(),
        );
        let exchange = self.names.commands_exchange();
        let key = cmd.routing_key();
        publish_confirmed(
            &self.channel,
            self.broker.timeout(),
            &exchange,
            &key,
            true,
            &cmd.body,
            props,
        )
        .await?;
        Ok(message_id)
    }

    pub async fn close(self) {
        self.reader.abort();
        self.broker.close().await;
    }
}
