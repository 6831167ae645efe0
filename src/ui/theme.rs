//! The window's colours and spacing, in one place: states read the same in
//! every panel (green ok, amber waiting or warned, red failed or offline).

use egui::Color32;

/// Passed, connected, complete, valid.
pub const OK: Color32 = Color32::from_rgb(76, 175, 80);
/// Pending, connecting, open, a deviation or a fault in force.
pub const WARN: Color32 = Color32::from_rgb(255, 179, 0);
/// Failed, offline, interrupted, refused.
pub const ERROR: Color32 = Color32::from_rgb(229, 57, 53);
/// Fault markers on the traffic plot.
pub const FAULT_MARK: Color32 = Color32::from_rgb(255, 152, 0);
/// QoS 1 flows.
pub const QOS1: Color32 = Color32::from_rgb(66, 165, 245);
/// QoS 2 flows.
pub const QOS2: Color32 = Color32::from_rgb(171, 71, 188);
/// Background of an error toast.
pub const TOAST_ERROR: Color32 = Color32::from_rgb(120, 28, 28);
/// Background of a success toast.
pub const TOAST_OK: Color32 = Color32::from_rgb(27, 94, 32);

/// Between related controls.
pub const SMALL_GAP: f32 = 4.0;
/// Between groups of controls.
pub const GAP: f32 = 6.0;
/// Between sections of a page.
pub const SECTION_GAP: f32 = 24.0;
