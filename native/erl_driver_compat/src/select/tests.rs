//! Unit tests of the select table: which modes are armed, `ERL_DRV_USE`
//! and when `stop_select` runs.

use super::*;

const R: c_int = DRV_READ;
const W: c_int = DRV_WRITE;
const U: c_int = DRV_USE;
const NOCB: c_int = DRV_USE_NO_CALLBACK;

#[test]
fn selecting_creates_and_arms_only_new_modes() {
    let (next, p) = plan(None, R | U, true);
    assert_eq!(next, Some((R, true)));
    assert!(p.create);
    assert_eq!(p.arm, R);
    let (next, p) = plan(Some((R, true)), R | W, true);
    assert_eq!(next, Some((R | W, true)));
    assert!(!p.create);
    assert_eq!(p.arm, W);
}

#[test]
fn use_alone_or_with_a_selected_mode_does_not_mark_used() {
    assert_eq!(plan(None, U, true), (None, Plan::default()));
    assert_eq!(plan(Some((R, false)), R | U, true).0, Some((R, false)));
}

#[test]
fn use_off_stops_with_stop_select() {
    let (next, p) = plan(Some((R | W, true)), U, false);
    assert_eq!(next, None);
    assert_eq!(p.cancel, R | W);
    assert_eq!(p.stop, Some(true));
}

#[test]
fn use_off_on_an_unknown_descriptor_calls_stop_select_at_once() {
    let (_, p) = plan(None, R | U, false);
    assert!(p.stop_now);
    let (_, p) = plan(None, R | NOCB, false);
    assert!(!p.stop_now);
    let (_, p) = plan(None, R, false);
    assert_eq!(p, Plan::default());
}

#[test]
fn no_callback_removes_only_the_modes_given() {
    let (next, p) = plan(Some((R | W, true)), R | NOCB, false);
    assert_eq!(next, Some((W, true)));
    assert_eq!(p.cancel, R);
    assert_eq!(p.stop, None);
    let (next, p) = plan(Some((R, true)), R | W | NOCB, false);
    assert_eq!(next, None);
    assert_eq!(p.stop, Some(false));
}

#[test]
fn last_mode_off_keeps_a_used_descriptor_known() {
    let (next, p) = plan(Some((R, true)), R, false);
    assert_eq!(next, Some((0, true)));
    assert_eq!(p.stop, None);
    // ... which a later ERL_DRV_USE still stops, with stop_select.
    let (next, p) = plan(Some((0, true)), U, false);
    assert_eq!(next, None);
    assert_eq!(p.stop, Some(true));
}

#[test]
fn last_mode_off_of_an_unused_descriptor_leaves_the_poll_set() {
    let (next, p) = plan(Some((R | W, false)), W, false);
    assert_eq!(next, Some((R, false)));
    assert_eq!(p.stop, None);
    let (next, p) = plan(Some((R, false)), R, false);
    assert_eq!(next, None);
    assert_eq!(p.stop, Some(false));
}
