package redirect

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner applies Rules with iptables-save and iptables-restore.
type Runner struct {
	// Prefix goes in front of every command, e.g. ["ip", "netns", "exec",
	// "pod1"] to act in another network namespace; nil runs them directly.
	Prefix []string
	// Save and Restore name the commands; empty means "iptables-save" and
	// "iptables-restore" from $PATH (whichever backend, nft or legacy, the
	// alternatives system points at: the rules use nothing backend-specific).
	Save, Restore string
}

// Apply installs r in the nat table: Causeway's chains are replaced, the
// jumps into them added unless already there, other rules left alone. It is
// idempotent. It returns the iptables-restore input it used.
func (rn Runner) Apply(ctx context.Context, r Rules) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	save := rn.Save
	if save == "" {
		save = "iptables-save"
	}
	restore := rn.Restore
	if restore == "" {
		restore = "iptables-restore"
	}
	current, err := rn.run(ctx, nil, save, "-t", "nat")
	if err != nil {
		return nil, err
	}
	input, err := r.Render(InstalledJumps(current, r.Jumps())...)
	if err != nil {
		return nil, err
	}
	// --noflush: only the chains the input declares are flushed, so rules a
	// CNI plugin or another tool put in this namespace's nat table stay.
	if _, err := rn.run(ctx, input, restore, "--noflush"); err != nil {
		return input, err
	}
	return input, nil
}

// run runs one command and names it, with its stderr, in the error.
func (rn Runner) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string(nil), rn.Prefix...), name), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("redirect: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
