//! The four httpmq operations applied to the broker. A topic is a core queue created
//! fan-out only (no default subscription, so a message is kept only for the users
//! subscribed when it was published); a user is a named subscription on it started at
//! the end of the queue. Every reply comes from [`super::reply`].

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use godwit_core::{CreateOptions, Error, Kind, NewMessage, ReadOptions, StartAt};

use super::reply::{core_error, empty, message, text, SUBSCRIBED};
use super::request::Pair;
use crate::native::delivered::take_readable;
use crate::AppState;

/// `POST /{topic}/{user}`: creates the topic's queue (fan-out only) if it is new, then
/// the user's subscription at the end of it, both on disk before the 200 (fix 6.2 #5).
/// Subscribing again keeps the user's position.
pub async fn subscribe(app: &AppState, pair: &Pair) -> Response {
    let create = CreateOptions {
        description: None,
        fanout_only: true,
    };
    match app.broker.create(&pair.topic, create).await {
        Ok(()) | Err(Error::AlreadyExists(_)) => {}
        Err(e) => return core_error(&e),
    }
    match app
        .broker
        .subscribe(&pair.topic, &pair.user, StartAt::Latest)
        .await
    {
        Ok(_) => text(StatusCode::OK, SUBSCRIBED),
        Err(e) => core_error(&e),
    }
}

/// `DELETE /{topic}/{user}`: removes the subscription, releasing its claim on every
/// message it had not fetched; 404 when the pair is not subscribed.
pub async fn unsubscribe(app: &AppState, pair: &Pair) -> Response {
    if let Err(e) = valid_pair(pair) {
        return core_error(&e);
    }
    match app.broker.unsubscribe(&pair.topic, &pair.user).await {
        Ok(()) => empty(StatusCode::OK),
        Err(e) => core_error(&e),
    }
}

/// `POST /{topic}`: appends `body` for the topic's current subscribers. A topic that
/// never had one has no queue, and none is made for it (fix 6.2 #7): the publish
/// answers 200 and stores nothing, as it does on a topic whose users all left.
pub async fn publish(app: &AppState, topic: &str, body: Bytes) -> Response {
    if let Err(e) = godwit_core::name::validate_queue(topic) {
        return core_error(&e);
    }
    match app.broker.kind_of(topic) {
        None => return empty(StatusCode::OK),
        Some(Kind::Value) => return empty(StatusCode::BAD_REQUEST),
        Some(Kind::Queue) => {}
    }
    match app.broker.push(topic, vec![NewMessage::new(body)]).await {
        Ok(_) => empty(StatusCode::OK),
        Err(e) => core_error(&e),
    }
}

/// `GET /{topic}/{user}`: takes the user's next message, confirmed once the reply was
/// written (a client gone before that leaves it next in line); 204 at once when none
/// is waiting, 404 when the pair is not subscribed.
pub async fn fetch(app: &AppState, pair: &Pair) -> Response {
    if let Err(e) = valid_pair(pair) {
        return core_error(&e);
    }
    let opts = ReadOptions {
        max: 1,
        subscription: Some(pair.user.clone()),
        ..ReadOptions::default()
    };
    let delivery = match take_readable(&app.broker, &pair.topic, &opts).await {
        Ok(d) => d,
        Err(e) => return core_error(&e),
    };
    // An empty delivery found nothing; any other holds a readable message.
    match delivery.messages().first().map(|m| m.body.clone()) {
        Some(body) => message(body, delivery),
        None => empty(StatusCode::NO_CONTENT),
    }
}

/// `HEAD /{topic}/{user}`: the status GET would give, with the next message's length,
/// without moving the user's position (fix 6.2 #1).
pub async fn peek(app: &AppState, pair: &Pair) -> Response {
    if let Err(e) = valid_pair(pair) {
        return core_error(&e);
    }
    match app.broker.peek(&pair.topic, 1, Some(&pair.user)).await {
        // The body is dropped by the server for HEAD; its length stays in the header.
        Ok(messages) => match messages.into_iter().next() {
            Some(m) => text(StatusCode::OK, m.body),
            None => empty(StatusCode::NO_CONTENT),
        },
        Err(e) => core_error(&e),
    }
}

/// Refuses names the broker cannot hold (400) before a lookup that would only say
/// "not found".
fn valid_pair(pair: &Pair) -> godwit_core::Result<()> {
    godwit_core::name::validate_queue(&pair.topic)?;
    godwit_core::name::validate_subscription(&pair.user)
}
