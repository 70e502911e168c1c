//! One function per route (spec section 4): each reads its parameters, calls the
//! broker and renders the reply. Dispatch and body parsing happen before, in
//! [`super`].

use std::collections::BTreeMap;

use axum::http::Method;
use axum::response::Response;
use godwit_core::{
    Broker, CreateOptions, Error, Message, NewMessage, PushOptions, QueueStats, Retention,
    RetentionMode, SettingsPatch, StartAt, SubscriptionStats,
};

use super::directory::{self, queue_of, resolve, Directory, Topic, ID_HEADER};
use super::params::{Invalid, Params};
use super::reply::{self, timestamp, QsError};
use crate::restmq::pyjson::PyValue;

/// The most messages one `get_message` returns.
const MAX_GET: i64 = 20;

/// What a route needs besides its parameters.
pub(crate) struct Call<'a> {
    /// The broker.
    pub broker: &'a Broker,
    /// The subscriber-to-topic cache.
    pub directory: &'a Directory,
    /// The request's method (GET answers actions with JSON, others with an empty 200).
    pub method: &'a Method,
    /// The parameters.
    pub params: Params,
}

type Reply = Result<Response, QsError>;

fn invalid(e: Invalid) -> QsError {
    QsError::unprocessable(e.0)
}

/// Integer parameters read together, their errors joined with `<br>` in the order
/// asked (8.2.2).
fn ints(p: &Params, names: &[&str]) -> Result<Vec<Option<i64>>, QsError> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match p.int(name, name) {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e.0),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(QsError::unprocessable(errors.join("<br>")))
    }
}

fn action_done(call: &Call<'_>, body: PyValue) -> Response {
    if call.method == Method::GET {
        reply::json(&body)
    } else {
        reply::empty()
    }
}

/// `topics`: every topic (or the one named), in creation order.
pub(crate) async fn topics(call: Call<'_>) -> Reply {
    let filter = call.params.string("topic").map_err(invalid)?;
    let rows = listed(call.broker, filter.as_deref())
        .await?
        .into_iter()
        .map(|(stats, topic)| {
            PyValue::dict([
                ("topic", PyValue::str(topic.name())),
                (
                    "description",
                    PyValue::str(stats.description.unwrap_or_default()),
                ),
                ("create_ts", PyValue::str(timestamp(stats.created_at_ms))),
            ])
        })
        .collect();
    Ok(reply::json(&PyValue::List(rows)))
}

/// The topics a listing covers, with their queues' stats: the one named (if it
/// exists) or all, by creation.
async fn listed(
    broker: &Broker,
    filter: Option<&str>,
) -> Result<Vec<(QueueStats, Topic)>, QsError> {
    let mut stats = match filter {
        Some(topic) => broker.stats(&queue_of(topic)).into_iter().collect(),
        None => broker.list_prefix(directory::QUEUE_PREFIX),
    };
    stats.sort_by_key(|s| s.creation);
    let mut topics = Vec::new();
    for s in stats {
        if let Some(topic) = resolve(broker, &s.name).await? {
            topics.push((s, topic));
        }
    }
    Ok(topics)
}

/// `topic_messages`: every retained message of every topic (or the one named), by id.
pub(crate) async fn topic_messages(call: Call<'_>) -> Reply {
    let filter = call.params.string("topic").map_err(invalid)?;
    let page = call.broker.config().max_batch.max(1);
    let mut rows = Vec::new();
    for (_, topic) in listed(call.broker, filter.as_deref()).await? {
        let mut from = 0;
        loop {
            let got = match call.broker.read_log(&topic.queue, from, page).await {
                Ok(got) => got,
                Err(Error::NotFound(_) | Error::NotALog(_)) => break,
                Err(e) => return Err(e.into()),
            };
            if got.messages.is_empty() {
                break;
            }
            rows.extend(
                got.messages
                    .iter()
                    .map(|m| (message_id(m), message_row(&topic, m))),
            );
            from = got.next;
        }
    }
    rows.sort_by_key(|(id, _)| *id);
    Ok(reply::json(&PyValue::List(
        rows.into_iter().map(|(_, row)| row).collect(),
    )))
}

/// `topic_subscribers`: every subscriber of every topic (or the one named), by id.
pub(crate) async fn topic_subscribers(call: Call<'_>) -> Reply {
    let filter = call.params.string("topic").map_err(invalid)?;
    let mut rows = Vec::new();
    for (_, topic) in listed(call.broker, filter.as_deref()).await? {
        let subs = match call.broker.subscriptions(&topic.queue) {
            Ok(subs) => subs,
            Err(Error::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        for sub in subs {
            if let Some((id, row)) = subscriber_row(&topic, &sub) {
                rows.push((id, row));
            }
        }
    }
    rows.sort_by_key(|(id, _)| *id);
    Ok(reply::json(&PyValue::List(
        rows.into_iter().map(|(_, row)| row).collect(),
    )))
}

/// `topic`: creates a topic with its description.
pub(crate) async fn create(call: Call<'_>) -> Reply {
    let topic = call.params.string("topic").map_err(invalid)?;
    let description = call.params.string("description").map_err(invalid)?;
    let (Some(topic), Some(description)) = (topic, description) else {
        return Err(QsError::unprocessable(
            "Missing parameters topic, description",
        ));
    };
    let queue = queue_of(&topic);
    let opts = CreateOptions {
        description: Some(description),
        fanout_only: true,
    };
    match call.broker.create(&queue, opts).await {
        Ok(()) => {}
        // A queue without a base is a creation that did not finish (a crash between
        // its steps): this one finishes it.
        Err(Error::AlreadyExists(_)) if resolve(call.broker, &queue).await?.is_none() => {}
        Err(Error::AlreadyExists(_)) => {
            return Err(QsError::unprocessable(format!(
                "The topic \"{topic}\" already exists"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    // A topic keeps every message until it is deleted: log retention, no limits.
    let patch = SettingsPatch {
        retention: Some(Retention {
            mode: RetentionMode::Log,
            ..Retention::default()
        }),
        ..SettingsPatch::default()
    };
    call.broker.configure(&queue, patch).await?;
    directory::record_base(call.broker, &queue).await?;
    Ok(reply::json(&PyValue::dict([
        ("topic", PyValue::str(topic.clone())),
        (
            "message",
            PyValue::str(format!("Topic \"{topic}\" created")),
        ),
    ])))
}

/// `topic_delete`: deletes a topic with its messages and subscribers; a topic that
/// does not exist is "deleted" too.
pub(crate) async fn delete(call: Call<'_>) -> Reply {
    let Some(topic) = call.params.string("topic").map_err(invalid)? else {
        return Err(QsError::unprocessable("Missing parameter: topic"));
    };
    let queue = queue_of(&topic);
    if let Ok(stats) = call.broker.stats(&queue) {
        match call.broker.drop_queue(&queue).await {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        directory::forget_base(call.broker, stats.creation).await?;
    }
    Ok(action_done(
        &call,
        PyValue::dict([(
            "message",
            PyValue::str(format!("Topic \"{topic}\" deleted")),
        )]),
    ))
}

/// `publish`: appends a message at the topic's next offset.
pub(crate) async fn publish(call: Call<'_>) -> Reply {
    let topic = call.params.string("topic").map_err(invalid)?;
    let message = call.params.message().map_err(invalid)?;
    let (Some(topic), Some(message)) = (topic, message) else {
        return Err(QsError::unprocessable("Missing parameters topic, message"));
    };
    let missing = || QsError::unprocessable(format!("Topic \"{topic}\" does not exist"));
    let Some(found) = resolve(call.broker, &queue_of(&topic)).await? else {
        return Err(missing());
    };
    let id = directory::next_message_id(call.broker).await?;
    let mut new = NewMessage::new(message.into_bytes());
    new.headers = BTreeMap::from([(ID_HEADER.to_string(), id.to_string())]);
    let opts = PushOptions {
        must_exist: true,
        ..PushOptions::default()
    };
    let pushed = match call.broker.push_with(&found.queue, vec![new], opts).await {
        Ok(pushed) => pushed,
        Err(Error::NotFound(_) | Error::InvalidName(_)) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let offset = pushed.outcomes.first().map_or(0, |o| found.offset(o.id));
    Ok(action_done(
        &call,
        PyValue::dict([(
            "message",
            PyValue::str(format!(
                "Saved message to topic \"{topic}\" at offset {offset}"
            )),
        )]),
    ))
}

/// `subscribe`: a new subscriber at the topic's end.
pub(crate) async fn subscribe(call: Call<'_>) -> Reply {
    let Some(topic) = call.params.string("topic").map_err(invalid)? else {
        return Err(QsError::unprocessable("Missing 'topic' parameter"));
    };
    let missing = || QsError::unprocessable(format!("The topic \"{topic}\" does not exist"));
    let queue = queue_of(&topic);
    if resolve(call.broker, &queue).await?.is_none() {
        return Err(missing());
    }
    let id = directory::next_subscriber_id(call.broker).await?;
    match call
        .broker
        .subscribe_cursor(&queue, &id.to_string(), StartAt::Latest)
        .await
    {
        Ok(_) => {}
        Err(Error::NotFound(_) | Error::NotALog(_) | Error::InvalidName(_)) => {
            return Err(missing())
        }
        Err(e) => return Err(e.into()),
    }
    call.directory.remember(id, &queue);
    Ok(reply::json(&PyValue::dict([
        ("topic", PyValue::str(topic)),
        ("subscriber_id", PyValue::int(id)),
    ])))
}

/// The topic of a subscriber id that can exist (positive), if any.
async fn subscriber_topic(call: &Call<'_>, id: i64) -> Result<Option<Topic>, QsError> {
    let Ok(id) = u64::try_from(id) else {
        return Ok(None);
    };
    let Some(queue) = call.directory.queue_of_subscriber(call.broker, id).await? else {
        return Ok(None);
    };
    let topic = resolve(call.broker, &queue).await?;
    if topic.is_none() {
        call.directory.forget(id);
    }
    Ok(topic)
}

/// `unsubscribe`: deletes a subscriber; an unknown one is "deleted" too.
pub(crate) async fn unsubscribe(call: Call<'_>) -> Reply {
    let [id] = ints(&call.params, &["subscriber_id"])?[..] else {
        unreachable!("one name asked")
    };
    let Some(id) = id else {
        return Err(QsError::unprocessable("Missing parameter: subscriber_id"));
    };
    if let Some(topic) = subscriber_topic(&call, id).await? {
        match call.broker.unsubscribe(&topic.queue, &id.to_string()).await {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        call.directory.forget(id.unsigned_abs());
    }
    Ok(action_done(
        &call,
        PyValue::dict([(
            "message",
            PyValue::str(format!("Subscriber \"{id}\" deleted")),
        )]),
    ))
}

/// `get_message`: up to `num_messages` (1…20) messages after the subscriber's cursor,
/// without moving it; one message is an object, none or several an array.
pub(crate) async fn get_message(call: Call<'_>) -> Reply {
    let values = ints(&call.params, &["subscriber_id", "num_messages"])?;
    let [id, num] = values[..] else {
        unreachable!("two names asked")
    };
    let Some(id) = id else {
        return Err(QsError::unprocessable("Missing 'topic' parameter"));
    };
    let max_batch = i64::try_from(call.broker.config().max_batch).unwrap_or(MAX_GET);
    let num = num.unwrap_or(1).clamp(1, MAX_GET.min(max_batch).max(1));
    let empty = || Ok(reply::json(&PyValue::List(Vec::new())));
    let Some(topic) = subscriber_topic(&call, id).await? else {
        return empty();
    };
    let page = match call
        .broker
        .read_cursor(&topic.queue, &id.to_string(), num.unsigned_abs() as usize)
        .await
    {
        Ok(page) => page,
        Err(Error::NotFound(_) | Error::NotALog(_)) => {
            call.directory.forget(id.unsigned_abs());
            return empty();
        }
        Err(e) => return Err(e.into()),
    };
    let mut rows: Vec<PyValue> = page
        .messages
        .iter()
        .map(|m| message_row(&topic, m))
        .collect();
    if rows.len() == 1 {
        return Ok(reply::json(&rows.remove(0)));
    }
    Ok(reply::json(&PyValue::List(rows)))
}

/// `ack_message`: sets the subscriber's cursor to `offset` (its last processed one);
/// the updated row, or `null` for an unknown subscriber, with any method.
pub(crate) async fn ack_message(call: Call<'_>) -> Reply {
    let values = ints(&call.params, &["subscriber_id", "offset"])?;
    let [Some(id), Some(offset)] = values[..] else {
        return Err(QsError::unprocessable("Missing parameter: topic"));
    };
    let null = || Ok(reply::json(&PyValue::Null));
    let Some(topic) = subscriber_topic(&call, id).await? else {
        return null();
    };
    let queue = &topic.queue;
    let name = id.to_string();
    // The core's cursor is the next id to read.
    let position = topic.position(offset.saturating_add(1));
    match call.broker.seek(queue, &name, position).await {
        Ok(()) => {}
        Err(Error::NotFound(_)) => {
            call.directory.forget(id.unsigned_abs());
            return null();
        }
        Err(e) => return Err(e.into()),
    }
    let subs = match call.broker.subscriptions(queue) {
        Ok(subs) => subs,
        Err(Error::NotFound(_)) => return null(),
        Err(e) => return Err(e.into()),
    };
    let row = subs
        .iter()
        .filter(|s| s.name.as_deref() == Some(name.as_str()))
        .find_map(|s| subscriber_row(&topic, s))
        .map_or(PyValue::Null, |(_, row)| row);
    Ok(reply::json(&row))
}

/// `topic_reset`: every subscriber of the topic to `offset` − 1 (default offset 1).
pub(crate) async fn reset(call: Call<'_>) -> Reply {
    let offset = call
        .params
        .int("offset", "subscriber_id")
        .map_err(invalid)?;
    let topic = call.params.string("topic").map_err(invalid)?;
    let offset_zero_json = call.params.has("offset") && !call.params.present("offset");
    let (Some(topic), false) = (topic, offset_zero_json) else {
        return Err(QsError::unprocessable("Missing 'topic' parameter"));
    };
    let offset = offset.unwrap_or(1);
    // Cursor K − 1 means "next read is K"; the core's position is K itself, and any
    // K ≤ 0 reads from the first retained message, as the original's negative cursor.
    let count = match resolve(call.broker, &queue_of(&topic)).await? {
        Some(found) => {
            let position = found.position(offset);
            match call.broker.reset(&found.queue, Some(position)).await {
                Ok(n) => n,
                Err(Error::NotFound(_) | Error::NotALog(_)) => 0,
                Err(e) => return Err(e.into()),
            }
        }
        None => 0,
    };
    Ok(action_done(
        &call,
        PyValue::dict([
            ("topic", PyValue::str(topic)),
            ("offset", PyValue::int(offset)),
            ("subscriber_count", PyValue::int(count)),
        ]),
    ))
}

/// A message's global id, from its header (0 if it has none).
fn message_id(m: &Message) -> u64 {
    m.headers
        .get(ID_HEADER)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A `topic_message` row.
fn message_row(topic: &Topic, m: &Message) -> PyValue {
    PyValue::dict([
        ("id", PyValue::int(message_id(m))),
        ("topic", PyValue::str(topic.name())),
        ("_offset", PyValue::int(topic.offset(m.id))),
        ("message", PyValue::str(String::from_utf8_lossy(&m.body))),
        ("publish_ts", PyValue::str(timestamp(m.created_at_ms))),
    ])
}

/// A `topic_subscriber` row with its id, for a cursor named by a number.
fn subscriber_row(topic: &Topic, sub: &SubscriptionStats) -> Option<(u64, PyValue)> {
    let id: u64 = sub.name.as_deref()?.parse().ok()?;
    let offset = topic.cursor_offset(sub.position.unwrap_or(0));
    let row = PyValue::dict([
        ("id", PyValue::int(id)),
        ("topic", PyValue::str(topic.name())),
        ("_offset", PyValue::int(offset)),
        (
            "action_ts",
            PyValue::str(timestamp(sub.last_active_ms.unwrap_or(0))),
        ),
    ]);
    Some((id, row))
}
