//! Cards out, in parallel, to every eligible approver on every channel they have; updates
//! in place when the status changes. Sends that land after the decision are updated at once.

use std::sync::Arc;

use airlock_channels::{Card, MessageRef, Status};
use airlock_store::MessageRow;

use crate::{Hub, event};

pub(crate) struct Sent {
    pub(crate) channel: usize,
    pub(crate) msg: MessageRef,
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
        let (hub, id, card, buttons) = (hub.clone(), id.to_string(), card.clone(), buttons.clone());
        tokio::spawn(async move {
            // What channels render a new card with.
            let sent_as = Status::Pending {
                approved_by: Vec::new(),
            };
            let ch = hub.inner.channels[i].clone();
            match ch.send(&card, &buttons, &addr).await {
                Ok(msg) => {
                    let row = MessageRow {
                        approval_id: id.clone(),
                        channel: ch.name().to_string(),
                        person: person.clone(),
                        message_ref: msg.0.clone(),
                    };
                    if let Err(e) = hub.inner.store.add_message(&row).await {
                        tracing::warn!(approval = %id, error = %e, "could not record a sent card");
                    }
                    let late = hub.with_live(&id, |l| {
                        l.in_flight -= 1;
                        l.delivered += 1;
                        l.sent.push(Sent {
                            channel: i,
                            msg: msg.clone(),
                        });
                        (l.status != sent_as).then(|| l.status.clone())
                    });
                    // Votes counted or a decision taken while this card was on its way (the
                    // updates they sent did not know of it): bring it up to date now.
                    if let Some(Some(status)) = late
                        && let Err(e) = ch.update(&card, &status, &msg).await
                    {
                        tracing::warn!(approval = %id, channel = ch.name(), error = %e, "could not update a card");
                    }
                }
                Err(e) => {
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

/// Re-renders every sent card of a live approval for `status`.
pub(crate) fn update_all(hub: &Hub, id: &str, card: &Arc<Card>, status: &Status) {
    let sent: Vec<(usize, MessageRef)> = hub
        .with_live(id, |l| l.sent.iter().map(|s| (s.channel, s.msg.clone())).collect())
        .unwrap_or_default();
    for (i, msg) in sent {
        let (ch, card, status, id) = (
            hub.inner.channels[i].clone(),
            card.clone(),
            status.clone(),
            id.to_string(),
        );
        tokio::spawn(async move {
            if let Err(e) = ch.update(&card, &status, &msg).await {
                tracing::warn!(approval = %id, channel = ch.name(), error = %e, "could not update a card");
            }
        });
    }
    retire(hub, id);
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
            if let Err(e) = ch.update(&card, &status, &MessageRef(row.message_ref)).await {
                tracing::warn!(approval = %id, channel = ch.name(), error = %e, "could not update a card");
            }
        }
    });
}

/// Forgets a decided approval once no send is in flight (its history stays in the store).
fn retire(hub: &Hub, id: &str) {
    if let Ok(mut map) = hub.inner.live.lock()
        && map.get(id).is_some_and(|l| l.closed && l.in_flight == 0)
    {
        map.remove(id);
    }
}
