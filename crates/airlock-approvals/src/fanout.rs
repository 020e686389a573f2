//! Cards out, in parallel, to every eligible approver on every channel they have; updates
//! in place when the status changes. Each sent card has one follower task that applies
//! status changes in order, newest wins (a slow "1 of 2" edit can never land after
//! "Approved"); a card that lands after a change is brought up to date at once.

use std::sync::Arc;

use airlock_channels::token::{self, Decision};
use airlock_channels::{Buttons, Card, Channel, MessageRef, Status};
use airlock_store::MessageRow;
use tokio::sync::watch;

use crate::{Hub, event};

/// A sent card: status changes go to its follower.
pub(crate) struct Sent {
    pub(crate) status: watch::Sender<Status>,
}

/// Starts the follower of one sent card, which renders `current` at once when `stale`.
fn follow(
    hub: Hub,
    ch: Arc<dyn Channel>,
    card: Arc<Card>,
    buttons: Buttons,
    msg: MessageRef,
    current: Status,
    stale: bool,
) -> Sent {
    let (tx, mut rx) = watch::channel(current);
    if stale {
        rx.mark_changed();
    }
    tokio::spawn(async move {
        // Ends after rendering a closed status, or when the approval is retired with no
        // change left unseen.
        while rx.changed().await.is_ok() {
            let status = rx.borrow_and_update().clone();
            match ch.update(&card, &status, Some(&buttons), &msg).await {
                Ok(()) => hub.inner.health.delivered(ch.name(), crate::now_ms()),
                Err(e) => {
                    hub.inner.health.failed(ch.name(), crate::now_ms(), &e);
                    tracing::warn!(approval = %card.id, channel = ch.name(), error = %e, "could not update a card");
                }
            }
            if !status.is_open() {
                break;
            }
        }
    });
    Sent { status: tx }
}

/// The buttons `person` gets on a channel that [binds tokens](Channel::binds_tokens): the same
/// decisions as `shared`, each token minted for that person alone.
fn held_buttons(hub: &Hub, card: &Card, shared: &Buttons, channel: &str, person: &str) -> Buttons {
    let holder = token::holder(channel, person);
    let exp_secs = card.expires_ms.div_ceil(1000);
    let sign = |d| token::sign_for(&hub.inner.key, &card.id, &card.digest, &holder, d, exp_secs);
    Buttons {
        approve: sign(Decision::Approve),
        deny: sign(Decision::Deny),
        grant: shared.grant.as_ref().map(|_| sign(Decision::Grant)),
    }
}

/// Starts one send per (eligible person, channel with an address for them).
pub(crate) fn send_cards(hub: &Hub, id: &str, card: &Arc<Card>) {
    let roles: Vec<String> = card.rules.iter().flat_map(|r| r.approvers.iter().cloned()).collect();
    let mut jobs = Vec::new();
    for p in hub.inner.people.holding(&roles) {
        for (i, ch) in hub.inner.channels.iter().enumerate() {
            if let Some(addr) = ch.address(p) {
                jobs.push((i, p.name.clone(), addr));
            }
        }
    }
    let Some(buttons) = hub.with_live(id, |l| {
        l.in_flight = jobs.len();
        l.buttons.clone()
    }) else {
        return;
    };
    for (i, person, addr) in jobs {
        let buttons = match hub.inner.channels[i].binds_tokens() {
            true => held_buttons(hub, card, &buttons, hub.inner.channels[i].name(), &person),
            false => buttons.clone(),
        };
        let (hub, id, card) = (hub.clone(), id.to_string(), card.clone());
        tokio::spawn(async move {
            // What channels render a new card with.
            let sent_as = Status::Pending {
                approved_by: Vec::new(),
            };
            let ch = hub.inner.channels[i].clone();
            match ch.send(&card, &buttons, &addr).await {
                Ok(msg) => {
                    hub.inner.health.delivered(ch.name(), crate::now_ms());
                    let row = MessageRow {
                        approval_id: id.clone(),
                        channel: ch.name().to_string(),
                        person: person.clone(),
                        message_ref: msg.0.clone(),
                    };
                    if let Err(e) = hub.inner.store.add_message(&row).await {
                        tracing::warn!(approval = %id, error = %e, "could not record a sent card");
                    }
                    tracing::debug!(approval = %id, "{} card delivered", ch.name());
                    hub.with_live(&id, |l| {
                        l.in_flight -= 1;
                        l.delivered += 1;
                        // Votes counted or a decision taken while this card was on its way
                        // (their updates did not know of it): the follower catches up now.
                        let stale = l.status != sent_as;
                        l.sent.push(follow(
                            hub.clone(),
                            ch.clone(),
                            card.clone(),
                            buttons.clone(),
                            msg,
                            l.status.clone(),
                            stale,
                        ));
                    });
                }
                Err(e) => {
                    hub.inner.health.failed(ch.name(), crate::now_ms(), &e);
                    hub.audit(event(
                        "approval",
                        &card.agent,
                        &card.host,
                        "delivery_failed",
                        &format!("the card for {person} could not be delivered on {}: {e}", ch.name()),
                        serde_json::json!({ "approval": id, "channel": ch.name(), "person": person }),
                    ));
                    let nobody = hub.with_live(&id, |l| {
                        l.in_flight -= 1;
                        l.failed += 1;
                        l.in_flight == 0 && l.delivered == 0 && !l.closed
                    });
                    // Fail closed: a request no approver can see is refused, not left to time out.
                    if nobody == Some(true) {
                        hub.fail(&id, "no approval card could be delivered".into()).await;
                    }
                }
            }
            retire(&hub, &id);
        });
    }
}

/// Updates the cards of an approval this process no longer holds (found in the store).
pub(crate) fn update_stored(hub: Hub, id: String, card: Arc<Card>, status: Status) {
    tokio::spawn(async move {
        let Ok(rows) = hub.inner.store.messages(&id).await else {
            return;
        };
        for row in rows {
            let Some(ch) = hub.channel(&row.channel).cloned() else {
                continue;
            };
            // Closed statuses only (a restart abandons what was held): no buttons to keep.
            if let Err(e) = ch.update(&card, &status, None, &MessageRef(row.message_ref)).await {
                tracing::warn!(approval = %id, channel = ch.name(), error = %e, "could not update a card");
            }
        }
    });
}

/// Forgets a decided approval once no send is in flight (its history stays in the store).
pub(crate) fn retire(hub: &Hub, id: &str) {
    if let Ok(mut map) = hub.inner.live.lock()
        && map.get(id).is_some_and(|l| l.closed && l.in_flight == 0)
    {
        map.remove(id);
    }
}
