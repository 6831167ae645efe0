//! Authentication and authorisation at the tap, for any broker behind it.
//!
//! A users file (or a scenario's `auth` section) lists usernames, passwords
//! and, per user, the topic filters they may publish to and subscribe to.
//! The tap answers for the broker where a client is refused, in the client's
//! own protocol: CONNACK "not authorized" (3.1.1 code 5, MQTT 5 0x87), a
//! SUBACK failure for a denied filter (0x80 / 0x87), and a denied PUBLISH is
//! not forwarded (MQTT 5: PUBACK/PUBREC 0x87; 3.1.1 has no refusal code, so
//! the tap acknowledges it as 3.1.1 §3.3.5 allows, and drops it).

use std::path::Path;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use serde::{Deserialize, Serialize};

use crate::wire::topic_matches;

/// Who may connect and what each may do.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename = "Auth")]
pub struct AuthSpec {
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// Clients without a username may connect (and publish and subscribe to everything).
    #[serde(default)]
    pub anonymous: bool,
}

/// One user. Filters may use `{username}` and `{client_id}`; a deny beats an allow.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename = "User")]
pub struct UserSpec {
    pub username: String,
    pub password: String,
    /// Topic filters this user may publish to (default: everything).
    #[serde(default = "everything")]
    pub publish: Vec<String>,
    /// Topic filters this user may subscribe within (default: everything).
    #[serde(default = "everything")]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub deny_publish: Vec<String>,
    #[serde(default)]
    pub deny_subscribe: Vec<String>,
}

fn everything() -> Vec<String> {
    vec!["#".into()]
}

/// What one connection was granted at CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// No username, and anonymous access is on: everything.
    Anonymous,
    /// The index of the user in [`AuthSpec::users`], and the client id.
    User(usize, String),
}

/// Why a users file (`--users FILE`) cannot be used; it names the file, and
/// the line and column of a syntax error.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("{}: {error}", path.display())]
    Read {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}:{line}:{column}: {error} (expected Auth(users: [(username: \"…\", password: \"…\", publish: [\"…\"], subscribe: [\"…\"])], anonymous: false))",
        path.display()
    )]
    Syntax {
        path: std::path::PathBuf,
        line: usize,
        column: usize,
        error: ron::Error,
    },
    #[error("{}: {error}", path.display())]
    Rule {
        path: std::path::PathBuf,
        error: RuleError,
    },
}

/// A users file that parsed but whose rules cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a user with an empty username")]
    EmptyUsername,
    #[error("user \"{0}\" is listed twice")]
    Duplicate(String),
    #[error("user \"{user}\": \"{filter}\" is not a valid topic filter")]
    BadFilter { user: String, filter: String },
}

/// Why the tap refuses a CONNECT (shown on the session; the client gets
/// CONNACK "not authorized").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no username, and anonymous access is off")]
    Anonymous,
    #[error("unknown user \"{0}\"")]
    UnknownUser(String),
    #[error("wrong password for \"{0}\"")]
    WrongPassword(String),
    #[error("the first packet is not a CONNECT")]
    NotConnect,
    #[error("{0}")]
    Malformed(String),
}

impl AuthSpec {
    /// Read a users file (RON); errors carry file:line:column.
    pub fn load(path: &Path) -> Result<AuthSpec, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| AuthFileError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let spec: AuthSpec = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(&text)
            .map_err(|e| AuthFileError::Syntax {
                path: path.to_path_buf(),
                line: e.span.start.line,
                column: e.span.start.col,
                error: e.code,
            })?;
        spec.check().map_err(|error| AuthFileError::Rule {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(spec)
    }

    /// Filters must be valid and usernames unique.
    pub fn check(&self) -> Result<(), RuleError> {
        let mut seen = std::collections::HashSet::new();
        for u in &self.users {
            if u.username.is_empty() {
                return Err(RuleError::EmptyUsername);
            }
            if !seen.insert(&u.username) {
                return Err(RuleError::Duplicate(u.username.clone()));
            }
            for f in u
                .publish
                .iter()
                .chain(&u.subscribe)
                .chain(&u.deny_publish)
                .chain(&u.deny_subscribe)
            {
                let probe = f.replace("{username}", "u").replace("{client_id}", "c");
                if !crate::wire::valid_filter(&probe) {
                    return Err(RuleError::BadFilter {
                        user: u.username.clone(),
                        filter: f.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Check a CONNECT's credentials. Err: why it is refused.
    pub fn login(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Grant, Refusal> {
        let Some(name) = username else {
            return if self.anonymous {
                Ok(Grant::Anonymous)
            } else {
                Err(Refusal::Anonymous)
            };
        };
        let Some(k) = self.users.iter().position(|u| u.username == name) else {
            return Err(Refusal::UnknownUser(name.to_string()));
        };
        if password != Some(self.users[k].password.as_bytes()) {
            return Err(Refusal::WrongPassword(name.to_string()));
        }
        Ok(Grant::User(k, client_id.to_string()))
    }

    fn rules<'a>(&'a self, grant: &'a Grant) -> Option<(&'a UserSpec, &'a str)> {
        match grant {
            Grant::Anonymous => None,
            Grant::User(k, client_id) => self.users.get(*k).map(|u| (u, client_id.as_str())),
        }
    }

    pub fn may_publish(&self, grant: &Grant, topic: &str) -> bool {
        match self.rules(grant) {
            None => true,
            Some((u, id)) => {
                let hits = |filters: &[String]| {
                    filters
                        .iter()
                        .any(|f| topic_matches(topic, &fill(f, u, id)))
                };
                hits(&u.publish) && !hits(&u.deny_publish)
            }
        }
    }

    /// A filter is allowed when an allowed filter covers it entirely (its
    /// wildcards are read as levels the allowed filter must match) and no
    /// denied filter overlaps it.
    pub fn may_subscribe(&self, grant: &Grant, filter: &str) -> bool {
        let filter = filter
            .strip_prefix("$share/")
            .and_then(|rest| rest.split_once('/').map(|(_, f)| f))
            .unwrap_or(filter);
        match self.rules(grant) {
            None => true,
            Some((u, id)) => {
                let covered = u
                    .subscribe
                    .iter()
                    .any(|f| topic_matches(filter, &fill(f, u, id)));
                let denied = u.deny_subscribe.iter().any(|d| {
                    let d = fill(d, u, id);
                    topic_matches(filter, &d) || topic_matches(&d, filter)
                });
                covered && !denied
            }
        }
    }
}

fn fill(filter: &str, u: &UserSpec, client_id: &str) -> String {
    if filter.contains('{') {
        filter
            .replace("{username}", &u.username)
            .replace("{client_id}", client_id)
    } else {
        filter.to_string()
    }
}

/// Client id, username and password of a CONNECT.
pub type Credentials = (String, Option<String>, Option<Vec<u8>>);

/// Client id, username and password of the CONNECT at the front of `frame`.
pub fn credentials(frame: &[u8], level: u8) -> Result<Credentials, Refusal> {
    let mut buf = BytesMut::from(frame);
    if level == 5 {
        match v5::Packet::read(&mut buf, None) {
            Ok(v5::Packet::Connect(c, _, login)) => Ok((
                c.client_id,
                login.as_ref().map(|l| l.username.clone()),
                login.map(|l| l.password.into_bytes()),
            )),
            Ok(_) => Err(Refusal::NotConnect),
            Err(e) => Err(Refusal::Malformed(e.to_string())),
        }
    } else {
        match v4::Packet::read(&mut buf, usize::MAX) {
            Ok(v4::Packet::Connect(c)) => Ok((
                c.client_id,
                c.login.as_ref().map(|l| l.username.clone()),
                c.login.map(|l| l.password.into_bytes()),
            )),
            Ok(_) => Err(Refusal::NotConnect),
            Err(e) => Err(Refusal::Malformed(e.to_string())),
        }
    }
}

fn bytes_of(write: impl FnOnce(&mut BytesMut) -> bool) -> Bytes {
    let mut buf = BytesMut::new();
    if write(&mut buf) {
        buf.freeze()
    } else {
        Bytes::new()
    }
}

/// CONNACK "not authorized" in the client's protocol.
pub fn connack_refused(level: u8) -> Bytes {
    connack(
        level,
        v4::ConnectReturnCode::NotAuthorized,
        v5::ConnectReturnCode::NotAuthorized,
    )
}

/// CONNACK "server unavailable" in the client's protocol (MQTT 3.1.1 §3.2.2.3
/// return code 3, MQTT 5 §3.2.2.2 reason code 0x88): the tap could not reach
/// the broker behind it.
pub fn connack_unavailable(level: u8) -> Bytes {
    connack(
        level,
        v4::ConnectReturnCode::ServiceUnavailable,
        v5::ConnectReturnCode::ServerUnavailable,
    )
}

/// CONNACK return code 0x01 "unacceptable protocol version" in the 3.1.1
/// form (3.1.1 §3.1.2.2; MQTT 5 §3.1.2.2 lets a server answer a level it does
/// not serve this way): for a CONNECT whose level the tap cannot serve.
pub fn connack_bad_version() -> Bytes {
    connack(
        4,
        v4::ConnectReturnCode::RefusedProtocolVersion,
        v5::ConnectReturnCode::UnsupportedProtocolVersion,
    )
}

fn connack(level: u8, v4_code: v4::ConnectReturnCode, v5_code: v5::ConnectReturnCode) -> Bytes {
    bytes_of(|b| {
        if level == 5 {
            v5::ConnAck {
                session_present: false,
                code: v5_code,
                properties: None,
            }
            .write(b)
            .is_ok()
        } else {
            v4::ConnAck::new(v4_code, false).write(b).is_ok()
        }
    })
}

/// The tap's answer to a denied PUBLISH of `qos` (nothing for QoS 0).
pub fn publish_refused(level: u8, pkid: u16, qos: u8) -> Option<Bytes> {
    let out = match (qos, level == 5) {
        (1, true) => bytes_of(|b| {
            v5::PubAck {
                pkid,
                reason: v5::PubAckReason::NotAuthorized,
                properties: None,
            }
            .write(b)
            .is_ok()
        }),
        (2, true) => bytes_of(|b| {
            v5::PubRec {
                pkid,
                reason: v5::PubRecReason::NotAuthorized,
                properties: None,
            }
            .write(b)
            .is_ok()
        }),
        (1, false) => bytes_of(|b| v4::PubAck::new(pkid).write(b).is_ok()),
        (2, false) => bytes_of(|b| v4::PubRec::new(pkid).write(b).is_ok()),
        _ => return None,
    };
    Some(out)
}

/// PUBCOMP for the PUBREL of a denied 3.1.1 QoS 2 publish.
pub fn pubcomp(pkid: u16) -> Bytes {
    bytes_of(|b| v4::PubComp::new(pkid).write(b).is_ok())
}

/// SUBACK failure for every filter of a SUBSCRIBE the tap refuses whole.
pub fn suback_refused(level: u8, pkid: u16, filters: usize) -> Bytes {
    bytes_of(|b| {
        if level == 5 {
            v5::SubAck {
                pkid,
                return_codes: vec![v5::SubscribeReasonCode::NotAuthorized; filters],
                properties: None,
            }
            .write(b)
            .is_ok()
        } else {
            v4::SubAck::new(pkid, vec![v4::SubscribeReasonCode::Failure; filters])
                .write(b)
                .is_ok()
        }
    })
}

/// The SUBSCRIBE `frame` with only the filters whose `allowed` is true.
pub fn subscribe_only(frame: &[u8], level: u8, allowed: &[bool]) -> Option<Bytes> {
    let mut buf = BytesMut::from(frame);
    let keep = |k: usize| allowed.get(k).copied().unwrap_or(false);
    if level == 5 {
        let v5::Packet::Subscribe(mut s) = v5::Packet::read(&mut buf, None).ok()? else {
            return None;
        };
        let mut k = 0;
        s.filters.retain(|_| {
            k += 1;
            keep(k - 1)
        });
        Some(bytes_of(|b| s.write(b).is_ok()))
    } else {
        let v4::Packet::Subscribe(mut s) = v4::Packet::read(&mut buf, usize::MAX).ok()? else {
            return None;
        };
        let mut k = 0;
        s.filters.retain(|_| {
            k += 1;
            keep(k - 1)
        });
        Some(bytes_of(|b| s.write(b).is_ok()))
    }
}

/// The broker's SUBACK `frame` (for the allowed filters only) with the
/// refused filters' failures put back in the client's order.
pub fn suback_merged(frame: &[u8], level: u8, allowed: &[bool]) -> Option<Bytes> {
    let mut buf = BytesMut::from(frame);
    if level == 5 {
        let v5::Packet::SubAck(mut s) = v5::Packet::read(&mut buf, None).ok()? else {
            return None;
        };
        let mut granted = s.return_codes.into_iter();
        s.return_codes = allowed
            .iter()
            .map(|ok| match ok {
                true => granted
                    .next()
                    .unwrap_or(v5::SubscribeReasonCode::Unspecified),
                false => v5::SubscribeReasonCode::NotAuthorized,
            })
            .collect();
        Some(bytes_of(|b| s.write(b).is_ok()))
    } else {
        let v4::Packet::SubAck(mut s) = v4::Packet::read(&mut buf, usize::MAX).ok()? else {
            return None;
        };
        let mut granted = s.return_codes.into_iter();
        s.return_codes = allowed
            .iter()
            .map(|ok| match ok {
                true => granted.next().unwrap_or(v4::SubscribeReasonCode::Failure),
                false => v4::SubscribeReasonCode::Failure,
            })
            .collect();
        Some(bytes_of(|b| s.write(b).is_ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AuthSpec {
        AuthSpec {
            users: vec![UserSpec {
                username: "dev".into(),
                password: "pw".into(),
                publish: vec!["devices/{client_id}/#".into()],
                subscribe: vec!["devices/{client_id}/cmd".into(), "public/#".into()],
                deny_publish: vec!["devices/{client_id}/secret".into()],
                deny_subscribe: vec!["public/private/#".into()],
            }],
            anonymous: false,
        }
    }

    #[test]
    fn logins_and_rules() {
        let a = spec();
        assert!(a.login("d1", None, None).is_err());
        assert!(a.login("d1", Some("dev"), Some(b"no")).is_err());
        assert!(a.login("d1", Some("who"), Some(b"pw")).is_err());
        let g = a.login("d1", Some("dev"), Some(b"pw")).unwrap();
        assert!(a.may_publish(&g, "devices/d1/temp"));
        assert!(!a.may_publish(&g, "devices/d2/temp"));
        assert!(!a.may_publish(&g, "devices/d1/secret"));
        assert!(a.may_subscribe(&g, "devices/d1/cmd"));
        assert!(!a.may_subscribe(&g, "devices/+/cmd"), "wider than allowed");
        assert!(a.may_subscribe(&g, "public/+/x"));
        assert!(!a.may_subscribe(&g, "public/#"), "overlaps a denied filter");
        assert!(a.may_subscribe(&g, "$share/g/public/news"));
        let anon = AuthSpec {
            anonymous: true,
            ..spec()
        };
        let g = anon.login("x", None, None).unwrap();
        assert!(anon.may_publish(&g, "anything"));
    }

    #[test]
    fn a_partly_denied_subscribe_is_split_and_its_suback_merged() {
        for level in [4u8, 5] {
            let frame = if level == 5 {
                bytes_of(|b| {
                    v5::Subscribe {
                        pkid: 7,
                        filters: vec![
                            v5::Filter::new("a", rumqttc::v5::mqttbytes::QoS::AtLeastOnce),
                            v5::Filter::new("b", rumqttc::v5::mqttbytes::QoS::AtMostOnce),
                        ],
                        properties: None,
                    }
                    .write(b)
                    .is_ok()
                })
            } else {
                bytes_of(|b| {
                    v4::Subscribe::new_many([
                        v4::SubscribeFilter::new("a".into(), rumqttc::mqttbytes::QoS::AtLeastOnce),
                        v4::SubscribeFilter::new("b".into(), rumqttc::mqttbytes::QoS::AtMostOnce),
                    ])
                    .write(b)
                    .is_ok()
                })
            };
            let allowed = [false, true];
            let only = subscribe_only(&frame, level, &allowed).unwrap();
            assert!(only.len() < frame.len(), "level {level}");
            let broker = if level == 5 {
                bytes_of(|b| {
                    v5::SubAck {
                        pkid: 7,
                        return_codes: vec![v5::SubscribeReasonCode::Success(
                            rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                        )],
                        properties: None,
                    }
                    .write(b)
                    .is_ok()
                })
            } else {
                bytes_of(|b| {
                    v4::SubAck::new(
                        7,
                        vec![v4::SubscribeReasonCode::Success(
                            rumqttc::mqttbytes::QoS::AtMostOnce,
                        )],
                    )
                    .write(b)
                    .is_ok()
                })
            };
            let merged = suback_merged(&broker, level, &allowed).unwrap();
            // Two return codes now: the failure first (0x80 / 0x87), then QoS 0.
            let codes = &merged[merged.len() - 2..];
            assert_eq!(codes, if level == 5 { [0x87, 0] } else { [0x80, 0] });
        }
        assert_eq!(connack_refused(4).as_ref(), [0x20, 2, 0, 5]);
        assert_eq!(connack_refused(5)[3], 0x87);
        assert_eq!(connack_unavailable(4).as_ref(), [0x20, 2, 0, 3]);
        assert_eq!(connack_unavailable(5)[3], 0x88);
    }
}
