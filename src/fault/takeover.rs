//! `Takeover(client, hold)`: a second client connects with `client`'s id and
//! holds the session for `hold` (default 5 s): the broker must close the
//! first connection (MQTT 3.1.1 §3.1.4, MQTT 5 §3.1.4 with reason 0x8E).

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind, FaultValidation};
use crate::time::Dur;

/// A second client connects with the same id and holds the session for `hold`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Takeover {
    pub client: String,
    #[serde(default = "five_seconds")]
    pub hold: Dur,
}

fn five_seconds() -> Dur {
    Dur::secs(5)
}

impl FaultKind for Takeover {
    fn label(&self) -> String {
        format!(
            "client-id takeover of {} for {}",
            self.client,
            humantime::format_duration(self.hold.0)
        )
    }

    fn validate(&self, cx: &FaultValidation<'_>) -> Result<(), String> {
        if cx.devices.contains(&self.client) {
            Ok(())
        } else {
            Err(format!("no device \"{}\" in this scenario", self.client))
        }
    }

    fn effect(&self) -> Effect {
        Effect::Takeover {
            client: self.client.clone(),
            hold: self.hold.0,
        }
    }
}
