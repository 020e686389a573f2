//! Bad configurations are rejected with file, line and key path — all problems at once.

use std::path::Path;

use airlock_config::{Config, ConfigError, Located};

fn errors(src: &str) -> Vec<Located> {
    match Config::parse(src, Path::new("airlock.toml")) {
        Err(ConfigError::Invalid { errors }) => errors,
        Err(other) => panic!("expected validation errors, got: {other}\n--- source ---\n{src}"),
        Ok(_) => panic!("accepted a bad config:\n{src}"),
    }
}

/// (what, source lines, expected line, expected key path, a piece of the message)
type Case = (&'static str, &'static [&'static str], usize, &'static str, &'static str);

const CASES: &[Case] = &[
    (
        "typo'd key",
        &["[[rules]]", "name = \"a\"", "mehtods = [\"GET\"]", "action = \"allow\""],
        3,
        "rules[0].mehtods",
        "unknown key (did you mean \"methods\"?)",
    ),
    (
        "typo'd table",
        &["[gatway]", "listen = \"127.0.0.1:1\""],
        1,
        "gatway",
        "did you mean \"gateway\"",
    ),
    (
        "bad action",
        &["[[rules]]", "name = \"a\"", "action = \"alow\""],
        3,
        "rules[0].action",
        "unknown action \"alow\" (expected allow, deny or approve)",
    ),
    (
        "missing action",
        &["", "[[rules]]", "name = \"a\""],
        2,
        "rules[0].action",
        "needs an action",
    ),
    (
        "bad host pattern",
        &[
            "[[rules]]",
            "name = \"a\"",
            "hosts = [",
            "  \"ok.example.com\",",
            "  \"https://x.com/\",",
            "]",
            "action = \"deny\"",
        ],
        5,
        "rules[0].hosts[1]",
        "bad host pattern",
    ),
    (
        "host with a port",
        &[
            "[[rules]]",
            "name = \"a\"",
            "hosts = [\"x.com:443\"]",
            "action = \"deny\"",
        ],
        3,
        "rules[0].hosts[0]",
        "no scheme, port or path",
    ),
    (
        "secret with two slots",
        &[
            "[secrets.s]",
            "hosts = [\"api.example.com\"]",
            "header = \"Authorization\"",
            "query = \"key\"",
        ],
        4,
        "secrets.s.query",
        "exactly one slot, but both header and query",
    ),
    (
        "secret with no slot",
        &["", "[secrets.s]", "hosts = [\"api.example.com\"]"],
        2,
        "secrets.s",
        "needs exactly one slot",
    ),
    (
        "secret bound to every host",
        &["[secrets.s]", "hosts = [\"*\"]", "header = \"X-Key\""],
        2,
        "secrets.s.hosts[0]",
        "would let its credential go anywhere",
    ),
    (
        "secret without hosts",
        &["[secrets.s]", "hosts = []", "header = \"X-Key\""],
        2,
        "secrets.s.hosts",
        "at least one host",
    ),
    (
        "format without {secret}",
        &[
            "[secrets.s]",
            "hosts = [\"api.example.com\"]",
            "header = \"Authorization\"",
            "format = \"Bearer\"",
        ],
        4,
        "secrets.s.format",
        "must contain \"{secret}\" exactly once",
    ),
    (
        "format with {secret} twice",
        &[
            "[secrets.s]",
            "hosts = [\"a.b\"]",
            "header = \"X-A\"",
            "format = \"{secret}{secret}\"",
        ],
        4,
        "secrets.s.format",
        "exactly once",
    ),
    (
        "agent referencing an undeclared secret",
        &["[[agents]]", "name = \"bot\"", "secrets = [\"gmail\"]"],
        3,
        "agents[0].secrets[0]",
        "secret \"gmail\" is not declared",
    ),
    (
        "bad agent name",
        &["[[agents]]", "name = \"my bot\""],
        2,
        "agents[0].name",
        "agent name is 1 to 64",
    ),
    (
        "agents as a table",
        &["[agents]", "name = \"bot\""],
        1,
        "agents",
        "write each entry as [[agents]]",
    ),
    (
        "duplicate rule names",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"allow\"",
            "[[rules]]",
            "name = \"a\"",
            "action = \"deny\"",
        ],
        5,
        "rules[1].name",
        "duplicate rule name \"a\"",
    ),
    (
        "placeholder containing another",
        &[
            "[secrets.a]",
            "hosts = [\"a.com\"]",
            "header = \"X-A\"",
            "placeholder = \"token-abc\"",
            "[secrets.b]",
            "hosts = [\"b.com\"]",
            "header = \"X-B\"",
            "placeholder = \"token-abc-2\"",
        ],
        8,
        "secrets.b.placeholder",
        "contain one another",
    ),
    (
        "placeholder too short",
        &[
            "[secrets.s]",
            "hosts = [\"a.com\"]",
            "header = \"X-A\"",
            "placeholder = \"short\"",
        ],
        4,
        "secrets.s.placeholder",
        "at least 8 printable",
    ),
    (
        "bad env name",
        &[
            "[secrets.s]",
            "hosts = [\"a.com\"]",
            "header = \"X-A\"",
            "env = \"1TOKEN\"",
        ],
        4,
        "secrets.s.env",
        "not a valid environment variable name",
    ),
    (
        "bad duration",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"approve\"",
            "approvers = [\"o\"]",
            "timeout = \"5 minutes\"",
        ],
        5,
        "rules[0].timeout",
        "bad duration \"5 minutes\"",
    ),
    (
        "timeout over a day",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"approve\"",
            "approvers = [\"o\"]",
            "timeout = \"25h\"",
        ],
        5,
        "rules[0].timeout",
        "at most 24h",
    ),
    (
        "zero quorum",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"approve\"",
            "approvers = [\"o\"]",
            "quorum = 0",
        ],
        5,
        "rules[0].quorum",
        "at least 1",
    ),
    (
        "bad rate",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"allow\"",
            "rate = \"60/fortnight\"",
        ],
        4,
        "rules[0].rate",
        "bad rate \"60/fortnight\"",
    ),
    (
        "approve without approvers",
        &["", "", "[[rules]]", "name = \"a\"", "action = \"approve\""],
        3,
        "rules[0].approvers",
        "an approve rule needs approvers",
    ),
    (
        "approvers on an allow rule",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"allow\"",
            "approvers = [\"owner\"]",
        ],
        4,
        "rules[0].approvers",
        "only valid on rules with action = \"approve\" (this one is \"allow\")",
    ),
    (
        "on_hold on a deny rule",
        &["[[rules]]", "name = \"a\"", "action = \"deny\"", "on_hold = \"defer\""],
        4,
        "rules[0].on_hold",
        "only valid on rules with action = \"approve\" (this one is \"deny\")",
    ),
    (
        "unknown on_hold",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"approve\"",
            "approvers = [\"owner\"]",
            "on_hold = \"later\"",
        ],
        5,
        "rules[0].on_hold",
        "unknown on_hold \"later\" (expected \"wait\" or \"defer\")",
    ),
    (
        "defer_window without defer",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"approve\"",
            "approvers = [\"owner\"]",
            "defer_window = \"5m\"",
        ],
        5,
        "rules[0].defer_window",
        "only valid with on_hold = \"defer\"",
    ),
    (
        "body with two kinds",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"deny\"",
            "body = { sql = [\"ddl\"], json = {} }",
        ],
        4,
        "rules[0].body",
        "exactly one kind of body matcher per rule, found json and sql",
    ),
    (
        "bad sql class",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"deny\"",
            "body = { sql = [\"ddl\", \"drop\"] }",
        ],
        4,
        "rules[0].body.sql[1]",
        "unknown SQL class \"drop\"",
    ),
    (
        "bad json pointer",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"deny\"",
            "body = { json = { action = \"x\" } }",
        ],
        4,
        "rules[0].body.json.action",
        "JSON pointer",
    ),
    (
        "date-time in a json body",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"deny\"",
            "body = { json = { \"/at\" = 1979-05-27 } }",
        ],
        4,
        "rules[0].body.json.\"/at\"",
        "no JSON form",
    ),
    (
        "unknown graphql key",
        &[
            "[[rules]]",
            "name = \"a\"",
            "action = \"deny\"",
            "body = { graphql = { names = [\"x\"] } }",
        ],
        4,
        "rules[0].body.graphql.names",
        "did you mean \"name\"",
    ),
    (
        "path glob not starting with /",
        &[
            "[[rules]]",
            "name = \"a\"",
            "paths = [\"repos/**\"]",
            "action = \"deny\"",
        ],
        3,
        "rules[0].paths[0]",
        "must start with \"/\"",
    ),
    (
        "bad method",
        &[
            "[[rules]]",
            "name = \"a\"",
            "methods = [\"GET POST\"]",
            "action = \"deny\"",
        ],
        3,
        "rules[0].methods[0]",
        "not an HTTP method",
    ),
    (
        "wrong type",
        &["[[rules]]", "name = \"a\"", "methods = \"GET\"", "action = \"deny\""],
        3,
        "rules[0].methods",
        "expected an array of strings, found a string",
    ),
    (
        "rule naming an undeclared agent",
        &["[[rules]]", "name = \"a\"", "agents = [\"ghost\"]", "action = \"deny\""],
        3,
        "rules[0].agents[0]",
        "agent \"ghost\" is not declared",
    ),
    (
        "bad header name",
        &[
            "[[rules]]",
            "name = \"a\"",
            "headers = { \"X Env\" = \"p\" }",
            "action = \"deny\"",
        ],
        3,
        "rules[0].headers.\"X Env\"",
        "not a valid header name",
    ),
    (
        "bad allow_private entry",
        &[
            "[gateway]",
            "allow_private = [",
            "  \"10.0.0.0/8\",",
            "  \"db.internal\",",
            "]",
        ],
        4,
        "gateway.allow_private[1]",
        "bad address \"db.internal\"",
    ),
    (
        "bad CIDR prefix",
        &["[gateway]", "allow_private = [\"10.0.0.0/33\"]"],
        2,
        "gateway.allow_private[0]",
        "prefix length must be 0 to 32",
    ),
    (
        "bad listen address",
        &["[gateway]", "listen = \"localhost:3128\""],
        2,
        "gateway.listen",
        "bad address \"localhost:3128\"",
    ),
    (
        "listen equals control",
        &["[gateway]", "listen = \"127.0.0.1:3129\""],
        1,
        "gateway.control",
        "need different addresses",
    ),
    (
        "approve as the default",
        &["[gateway]", "default = \"approve\""],
        2,
        "gateway.default",
        "must be \"deny\" or \"allow\"",
    ),
    (
        "a credential written in the file",
        &["[channels.telegram]", "bot_token = \"123:AAAbbb\""],
        2,
        "channels.telegram.bot_token",
        "must be \"env:NAME\" or \"vault:NAME\"",
    ),
    (
        "an unknown channel",
        &["[channels.carrier-pigeon]", "x = 1"],
        1,
        "channels.carrier-pigeon",
        "unknown channel",
    ),
    (
        "a Discord user name where the numeric id goes",
        &["[people.alice]", "roles = [\"owner\"]", "discord = \"alice#1234\""],
        3,
        "people.alice.discord",
        "a Discord user id is a number",
    ),
    (
        "a Discord bot token written in the file",
        &["[channels.discord]", "bot_token = \"MTA.x.y\""],
        2,
        "channels.discord.bot_token",
        "must be \"env:NAME\" or \"vault:NAME\"",
    ),
    (
        "a Discord channel that cannot receive clicks",
        &["[channels.discord]", "bot_token = \"env:D\"", "gateway = false"],
        1,
        "channels.discord",
        "gateway = true (the default) or public_key",
    ),
    (
        "a Discord public key that is not one",
        &["[channels.discord]", "bot_token = \"env:D\"", "public_key = \"abc\""],
        3,
        "channels.discord.public_key",
        "64 hex digits",
    ),
    (
        "a Webex channel without its webhook secret",
        &["[channels.webex]", "bot_token = \"env:W\""],
        1,
        "channels.webex.webhook_secret",
        "required",
    ),
    (
        "a Teams person given by email instead of their Entra object id",
        &["[people.alice]", "roles = [\"owner\"]", "teams = \"alice@example.com\""],
        3,
        "people.alice.teams",
        "Microsoft Entra object id (a GUID)",
    ),
    (
        "a Teams app password written in the file",
        &[
            "[channels.teams]",
            "app_id = \"5b1c0f3e-9e41-4c11-8b7a-0d5e4a7f2c10\"",
            "app_password = \"s3cr3t~value\"",
        ],
        3,
        "channels.teams.app_password",
        "must be \"env:NAME\" or \"vault:NAME\"",
    ),
    (
        "a Teams app id that is not a GUID",
        &[
            "[channels.teams]",
            "app_id = \"airlock-bot\"",
            "app_password = \"env:T\"",
        ],
        2,
        "channels.teams.app_id",
        "Microsoft App ID",
    ),
    (
        "a Google Chat person given by email",
        &["[people.alice]", "roles = [\"owner\"]", "gchat = \"alice@example.com\""],
        3,
        "people.alice.gchat",
        "users/ and a number",
    ),
    (
        "a Google Chat channel that cannot receive clicks",
        &["[channels.gchat]", "service_account_key = \"env:G\""],
        1,
        "channels.gchat",
        "subscription (Cloud Pub/Sub, no public URL) or audience",
    ),
    (
        "a person without roles",
        &["[people.alice]", "slack = \"U1\""],
        1,
        "people.alice.roles",
        "at least one role",
    ),
    (
        "an approver role nobody holds",
        &[
            "[people.alice]",
            "roles = [\"owner\"]",
            "[[rules]]",
            "name = \"r\"",
            "action = \"approve\"",
            "approvers = [\"ownr\"]",
        ],
        6,
        "rules[0].approvers",
        "no person holds the role \"ownr\"",
    ),
    (
        "a routing to a channel that is not configured",
        &["[approvals]", "channels = [\"slack\"]"],
        2,
        "approvals.channels[0]",
        "not a configured channel",
    ),
    (
        "a store URL naming another kind of database",
        &["[store]", "url = \"mysql://root:hunter2@db.internal/airlock\""],
        2,
        "store.url",
        "unsupported scheme \"mysql\": expected a postgres:// or postgresql:// URL",
    ),
    (
        "an empty store URL",
        &["[store]", "url = \"\""],
        2,
        "store.url",
        "must not be empty",
    ),
    (
        "a typo'd key in [store]",
        &["[store]", "uri = \"postgres://db.internal/airlock\""],
        2,
        "store.uri",
        "did you mean \"url\"",
    ),
    (
        "a OneCLI approver who is not a person",
        &[
            "[people.alice]",
            "roles = [\"owner\"]",
            "",
            "[compat.onecli]",
            "approver = \"bob\"",
        ],
        5,
        "compat.onecli.approver",
        "\"bob\" is not a configured person",
    ),
    (
        "a OneCLI proxy URL carrying a credential",
        &[
            "[compat.onecli]",
            "proxy_url = \"http://u:p@host.docker.internal:3128\"",
        ],
        2,
        "compat.onecli.proxy_url",
        "no credentials, path or query",
    ),
    (
        "a typo'd key in [compat.onecli]",
        &["[compat.onecli]", "aprover = \"alice\""],
        2,
        "compat.onecli.aprover",
        "did you mean \"approver\"",
    ),
    (
        "an agent glob with a star inside",
        &["[[agents]]", "name = \"ag-*-x\""],
        2,
        "agents[0].name",
        "a prefix and one trailing *",
    ),
    (
        "a replica lease that is not a duration",
        &["[store]", "lease = \"ten seconds\""],
        2,
        "store.lease",
        "bad duration \"ten seconds\"",
    ),
    (
        "a replica lease of zero",
        &["[store]", "lease = \"0s\""],
        2,
        "store.lease",
        "must be longer than 0s",
    ),
    (
        "an ntfy channel without the URL its buttons post to",
        &["[channels.ntfy]", "token = \"env:NTFY_TOKEN\""],
        1,
        "channels.ntfy.public_url",
        "required: the control plane's URL as approvers' phones reach it",
    ),
    (
        "an ntfy priority beyond 5",
        &[
            "[channels.ntfy]",
            "public_url = \"https://airlock.example.com\"",
            "priority = 9",
        ],
        3,
        "channels.ntfy.priority",
        "from 1 (min) to 5 (max)",
    ),
    (
        "an ntfy token written in the file",
        &[
            "[channels.ntfy]",
            "public_url = \"https://airlock.example.com\"",
            "token = \"tk_AgQdq7mVBoFD37zQ\"",
        ],
        3,
        "channels.ntfy.token",
        "credentials are never written in the file",
    ),
    (
        "an ntfy id that is not a topic name",
        &["[people.alice]", "roles = [\"owner\"]", "ntfy = \"alice/../admin\""],
        3,
        "people.alice.ntfy",
        "must be an ntfy topic name",
    ),
    (
        "a Mattermost channel without its callback secret",
        &[
            "[channels.mattermost]",
            "url = \"https://chat.example.com\"",
            "bot_token = \"env:MM_BOT\"",
            "public_url = \"https://airlock.example.com\"",
        ],
        1,
        "channels.mattermost.callback_secret",
        "required: where to read it",
    ),
    (
        "a Mattermost server over clear text",
        &["[channels.mattermost]", "url = \"http://chat.example.com\""],
        2,
        "channels.mattermost.url",
        "clear text",
    ),
    (
        "an email channel sending in clear text to a remote relay",
        &[
            "[channels.email]",
            "smtp = \"smtp.example.com:25\"",
            "security = \"none\"",
            "from = \"airlock <airlock@example.com>\"",
            "base_url = \"https://airlock.example.com\"",
        ],
        3,
        "channels.email.security",
        "clear text to smtp.example.com",
    ),
    (
        "an email channel without its landing pages' URL",
        &[
            "[channels.email]",
            "smtp = \"smtp.example.com\"",
            "from = \"airlock <airlock@example.com>\"",
        ],
        1,
        "channels.email.base_url",
        "required: the control plane's URL",
    ),
    (
        "an email sender that is not a mailbox",
        &[
            "[channels.email]",
            "smtp = \"smtp.example.com\"",
            "from = \"airlock\"",
            "base_url = \"https://airlock.example.com\"",
        ],
        3,
        "channels.email.from",
        "must be a mailbox",
    ),
    (
        "an SMTP password without a user name",
        &[
            "[channels.email]",
            "smtp = \"smtp.example.com\"",
            "from = \"a@example.com\"",
            "base_url = \"https://airlock.example.com\"",
            "password = \"env:SMTP_PASSWORD\"",
        ],
        1,
        "channels.email",
        "username and password go together",
    ),
    (
        "a WhatsApp channel without its app secret",
        &[
            "[channels.whatsapp]",
            "phone_number_id = \"106540352242922\"",
            "access_token = \"env:WA_TOKEN\"",
            "verify_token = \"env:WA_VERIFY\"",
            "public_url = \"https://airlock.example.com\"",
        ],
        1,
        "channels.whatsapp.app_secret",
        "required: where to read it",
    ),
    (
        "a WhatsApp phone number where its id belongs",
        &["[channels.whatsapp]", "phone_number_id = \"+1 555 0100\""],
        2,
        "channels.whatsapp.phone_number_id",
        "not the number",
    ),
    (
        "a WhatsApp id written with a plus",
        &["[people.alice]", "roles = [\"owner\"]", "whatsapp = \"+15551234567\""],
        3,
        "people.alice.whatsapp",
        "digits only",
    ),
    (
        "a Matrix channel without its access token",
        &["[channels.matrix]", "homeserver = \"https://matrix.example.org\""],
        1,
        "channels.matrix.access_token",
        "required: where to read it",
    ),
    (
        "a Matrix id without its server",
        &["[people.alice]", "roles = [\"owner\"]", "matrix = \"alice\""],
        3,
        "people.alice.matrix",
        "full user id",
    ),
    (
        "a signal-cli daemon over clear text",
        &["[channels.signal]", "url = \"http://10.0.0.5:8080\""],
        2,
        "channels.signal.url",
        "clear text",
    ),
    (
        "a Signal number without its +",
        &["[people.alice]", "roles = [\"owner\"]", "signal = \"15551234567\""],
        3,
        "people.alice.signal",
        "E.164",
    ),
    (
        "person that is not a table",
        &["[people]", "alice = \"owner\""],
        2,
        "people.alice",
        "expected a table, found a string",
    ),
];

#[test]
fn each_bad_config_names_file_line_and_key() {
    for (what, lines, line, key, msg) in CASES {
        let src = lines.join("\n");
        let errs = errors(&src);
        let hit = errs.iter().find(|e| e.key.to_string() == *key);
        let Some(e) = hit else {
            panic!("{what}: no error at {key}; got:\n{}", list(&errs));
        };
        assert_eq!(e.line, Some(*line), "{what}: wrong line for {e}\n--- source ---\n{src}");
        assert!(e.message.contains(msg), "{what}: message {:?} lacks {msg:?}", e.message);
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("airlock.toml:{line}: {key}: ")),
            "{what}: {shown}"
        );
        // Every error, not only the expected one, is placed on a line.
        assert!(
            errs.iter().all(|e| e.line.is_some()),
            "{what}: unplaced error in\n{}",
            list(&errs)
        );
    }
}

/// Bot tokens travel with every call to a channel's API and cards carry signed buttons: plain
/// http is accepted only toward loopback, judged on the host reqwest would dial.
#[test]
fn channel_endpoints_need_https_except_toward_loopback() {
    let section = |url: &str| -> [String; 3] {
        [
            format!("[channels.telegram]\nbot_token = \"env:TG\"\napi_url = {url:?}\n"),
            format!("[channels.slack]\nbot_token = \"env:S\"\napp_token = \"env:A\"\napi_url = {url:?}\n"),
            format!("[channels.webhook]\nsecret = \"env:W\"\nurl = {url:?}\n"),
        ]
    };
    for url in [
        "http://api.telegram.org",
        "http://10.0.0.7:8081/bot",
        "http://192.168.1.2",
        "http://localhost.evil.example",
        "http://127.0.0.1@evil.example/",
        "http://evil.example\\@127.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "ftp://127.0.0.1/",
        "api.telegram.org",
    ] {
        for (src, key) in section(url).iter().zip([
            "channels.telegram.api_url",
            "channels.slack.api_url",
            "channels.webhook.url",
        ]) {
            let errs = errors(src);
            let line = if key.ends_with(".url") { 3 } else { src.lines().count() };
            let want = format!("airlock.toml:{line}: {key}: ");
            assert!(
                errs.iter()
                    .any(|e| e.to_string().starts_with(&want) && e.message.contains("https://")),
                "{url}: expected an error at {want}; got:\n{}",
                list(&errs)
            );
        }
    }
    for url in [
        "https://api.telegram.org",
        "https://10.0.0.7:8443/",
        "http://127.0.0.1:8081",
        "http://127.5.6.7/",
        "http://[::1]:9000/",
        "http://LOCALHOST:8080/",
    ] {
        for src in section(url) {
            if let Err(e) = Config::parse(&src, Path::new("airlock.toml")) {
                panic!("{url} refused: {e}");
            }
        }
    }
}

#[test]
fn store_url_errors_never_quote_the_password() {
    for url in [
        "mysql://root:hunter2@db/airlock",
        "root:hunter2@db/airlock",
        "root:hunter2@db://airlock",
    ] {
        let src = format!("[store]\nurl = {url:?}");
        let errs = errors(&src);
        assert!(!list(&errs).contains("hunter2"), "{}", list(&errs));
    }
}

#[test]
fn the_well_known_message() {
    let errs = errors("[[rules]]\nname = \"a\"\naction = \"alow\"\n");
    assert_eq!(
        list(&errs),
        "airlock.toml:3: rules[0].action: unknown action \"alow\" (expected allow, deny or approve)"
    );
}

#[test]
fn all_errors_are_reported_at_once_in_file_order() {
    let src = r#"[gateway]
listen = "nowhere"
allow_private = ["bad"]

[[agents]]
name = "bot"
secrets = ["missing"]

[secrets.s]
hosts = ["a.com"]
header = "X-A"
format = "no placeholder here"

[[rules]]
name = "r"
mehtods = ["GET"]
action = "alow"
"#;
    let e = Config::parse(src, Path::new("conf/airlock.toml")).err().unwrap();
    let ConfigError::Invalid { errors } = &e else {
        panic!("{e}")
    };
    let got: Vec<(Option<usize>, String)> = errors.iter().map(|e| (e.line, e.key.to_string())).collect();
    let want = [
        (2, "gateway.listen"),
        (3, "gateway.allow_private[0]"),
        (7, "agents[0].secrets[0]"),
        (12, "secrets.s.format"),
        (16, "rules[0].mehtods"),
        (17, "rules[0].action"),
    ];
    let want: Vec<(Option<usize>, String)> = want.iter().map(|(l, k)| (Some(*l), k.to_string())).collect();
    assert_eq!(got, want);
    let text = e.to_string();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.lines().all(|l| l.starts_with("conf/airlock.toml:")), "{text}");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let e = Config::parse("[gateway]\nlisten = \"127.0.0.1:1\nx = 1\n", Path::new("airlock.toml"))
        .err()
        .unwrap();
    let ConfigError::Syntax { line, column, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*line, Some(2));
    assert!(column.is_some());
    assert!(e.to_string().starts_with("airlock.toml:2:"), "{e}");

    let e = Config::parse("a = 1\na = 2\n", Path::new("airlock.toml"))
        .err()
        .unwrap();
    assert!(matches!(e, ConfigError::Syntax { line: Some(2), .. }), "{e}");
}

fn list(errs: &[Located]) -> String {
    errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
