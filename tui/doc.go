// Package tui is labctl's terminal user interface (`labctl tui`): a live
// view of one lab in which a student picks interfaces, watches the packets
// crossing them, opens one to see every header outside and inside its
// tunnel, fires a ping or an HTTP request between two pods and follows it
// hop by hop, and grades the lab against a scenario.
//
// It is built the way bubbletea's own examples and soft-serve are:
//
//   - one sub-model per pane (topology, packets, detail, probe, scenario),
//     each with its own keys, size and view; the root model routes messages
//     and draws the frame (tabs, status line, key help that never goes away);
//   - Update and View do no I/O: reading the lab, starting a capture,
//     sending a probe, grading and saving a file happen in tea.Cmds, which
//     report back with messages;
//   - live data comes through re-armed channel commands: a command waits on a
//     channel (a capture's batches, a grader's finished checks), returns one
//     message, and the model issues it again after handling that message.
//
// A capture can deliver tens of thousands of packets a second, far more
// than a terminal can show. The packet command gathers what arrives within
// one frame into one message, so the model is updated and drawn at most
// about twenty times a second whatever the rate; packets are decoded only
// when a row or the detail pane shows them; and every buffer is bounded: the
// packets kept (a ring that drops the oldest), the packets held while the
// view is paused (counted, and the overflow shown as dropped from view), the
// bytes kept of each packet.
//
// The package reads labs through emulator/lab (the same Status that `labctl
// status` prints), captures with emulator/capture, follows probes with
// emulator/trace and grades with emulator/grade; it never imports the CLI.
// Tests drive the models with messages and a fake Backend, and pin each
// pane's view, ANSI stripped, in golden files.
package tui
