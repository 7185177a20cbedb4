package tui

import "github.com/charmbracelet/bubbles/key"

func binding(keys []string, help, desc string) key.Binding {
	return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
}

// globalKeys work in every pane (unless a text field has the keyboard).
type globalKeys struct {
	Next, Prev, Jump   key.Binding
	Capture, Stop      key.Binding
	Pause              key.Binding
	Filter, KernelExpr key.Binding
	Save               key.Binding
	Help, Quit         key.Binding
}

func newGlobalKeys() globalKeys {
	return globalKeys{
		Next:       binding([]string{"tab"}, "tab", "panes"),
		Prev:       binding([]string{"shift+tab"}, "shift+tab", "previous pane"),
		Jump:       binding([]string{"1", "2", "3", "4", "5"}, "1-5", "go to pane"),
		Capture:    binding([]string{"c"}, "c", "capture"),
		Stop:       binding([]string{"x"}, "x", "stop capturing"),
		Pause:      binding([]string{"p"}, "p", "pause"),
		Filter:     binding([]string{"/"}, "/", "filter"),
		KernelExpr: binding([]string{"f"}, "f", "capture filter"),
		Save:       binding([]string{"w"}, "w", "save"),
		Help:       binding([]string{"?"}, "?", "keys"),
		Quit:       binding([]string{"q", "ctrl+c"}, "q", "quit"),
	}
}

func (k globalKeys) full(live bool) [][]key.Binding {
	if !live {
		return [][]key.Binding{{k.Help, k.Quit}}
	}
	return [][]key.Binding{
		{k.Next, k.Prev, k.Jump},
		{k.Capture, k.Stop, k.Pause, k.Save},
		{k.Filter, k.KernelExpr, k.Help, k.Quit},
	}
}

// inputKeys are shown while a text field has the keyboard.
var inputKeys = []key.Binding{
	binding([]string{"enter"}, "enter", "apply"),
	binding([]string{"esc"}, "esc", "cancel"),
}

// scrollKeys move a viewport; the pane keymaps use them.
var (
	keyUp       = binding([]string{"up", "k"}, "↑/k", "up")
	keyDown     = binding([]string{"down", "j"}, "↓/j", "down")
	keyMove     = binding([]string{"up", "down"}, "↑/↓", "move")
	keyLeft     = binding([]string{"left", "h"}, "←/h", "left")
	keyRight    = binding([]string{"right", "l"}, "→/l", "right")
	keyPageUp   = binding([]string{"pgup", "ctrl+u"}, "pgup", "page up")
	keyPageDown = binding([]string{"pgdown", "ctrl+d"}, "pgdn", "page down")
	keyTop      = binding([]string{"home", "g"}, "g/home", "first")
	keyBottom   = binding([]string{"end", "G"}, "G", "follow")
	keyBack     = binding([]string{"esc"}, "esc", "back")
)
