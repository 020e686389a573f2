//! One request, start to finish, as named stages. Each takes what the one before produced and
//! either hands it on or answers the agent itself (audited); none reaches back into an earlier
//! one. The decisions are the core's; the stages gather facts and carry decisions out.

use std::sync::Arc;

use http::{Request, Response};

use crate::body::AgentBody;
use crate::conn::Conn;
use crate::record::Stop;
use crate::upstream::UpBody;
use crate::{decide, defer, facts, forward, hold, outbound, response};

pub async fn handle<B: AgentBody>(conn: Arc<Conn>, req: Request<B>) -> Response<UpBody> {
    match run(&conn, req).await {
        Ok(answer) => answer,
        Err(Stop(refusal)) => *refusal,
    }
}

/// `Err` is a refusal some stage already answered and audited.
async fn run<B: AgentBody>(conn: &Conn, req: Request<B>) -> Result<Response<UpBody>, Stop> {
    if let Some(answer) = defer::status(conn, &req).await {
        return Ok(answer); // the agents' own approval status, answered by the gateway
    }
    let mut req = facts::read(conn, req).await?; // bytes → facts: destination, readings, placeholder scan
    let decided = decide::decide(conn, &mut req)?; // the pure core: allow, deny or approve
    let (req, decided) = hold::settle(conn, req, decided).await?; // approve → held until people decide
    decide::admit(conn, &req.rec, &decided).await?; // audit writable, rate limits
    let minted = outbound::mint(conn, &req, &decided).await?; // OAuth2 / GitHub App tokens, cached or refreshed
    let out = outbound::prepare(conn, req, &decided, minted)?; // injection into the declared slot
    let answered = forward::send(conn, out, &decided).await?; // dial-time address checks
    Ok(response::deliver(conn, answered, &decided).await) // scrub, then audit when done
}
