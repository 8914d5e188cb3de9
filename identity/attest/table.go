package attest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/identity"
)

// SelectorKind is what a table entry matches on.
type SelectorKind string

const (
	SelectorUID SelectorKind = "uid" // the caller's effective uid
	SelectorGID SelectorKind = "gid" // the caller's effective gid
	// SelectorExe matches the absolute path of the caller's executable
	// (/proc/<pid>/exe), read at attestation time. Caller.Alive, checked after
	// the read, rules out a recycled pid (the Workload API pins the process
	// with a pidfd at connect).
	SelectorExe SelectorKind = "exe"
)

// Selector is one kind:value condition, written "uid:1000", "gid:20" or
// "exe:/usr/bin/app" (SPIRE's "unix:" prefix is accepted and dropped).
type Selector struct {
	Kind  SelectorKind
	Value string
	id    uint32 // parsed Value for uid/gid
}

// ParseSelector parses "kind:value".
func ParseSelector(s string) (Selector, error) {
	s = strings.TrimPrefix(s, "unix:")
	kind, value, ok := strings.Cut(s, ":")
	if !ok {
		return Selector{}, fmt.Errorf("selector %q: want kind:value (uid:N, gid:N or exe:/path)", s)
	}
	sel := Selector{Kind: SelectorKind(kind), Value: value}
	switch sel.Kind {
	case SelectorUID, SelectorGID:
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != value {
			return Selector{}, fmt.Errorf("selector %q: %s must be a decimal number", s, kind)
		}
		sel.id = uint32(n)
	case SelectorExe:
		if !filepath.IsAbs(value) || filepath.Clean(value) != value {
			return Selector{}, fmt.Errorf("selector %q: exe must be a clean absolute path", s)
		}
	default:
		return Selector{}, fmt.Errorf("selector %q: unknown kind %q (want uid, gid or exe)", s, kind)
	}
	return sel, nil
}

func (s Selector) String() string { return string(s.Kind) + ":" + s.Value }

// Entry maps one selector to a Kubernetes-style workload identity.
type Entry struct {
	Selector       Selector
	Namespace      string
	ServiceAccount string
}

// ParseEntry parses the one-line form used on command lines:
// "uid:1000=shop/web" (selector=namespace/serviceAccount).
func ParseEntry(s string) (Entry, error) {
	// Split at the last '=' so exe paths may contain '='.
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return Entry{}, fmt.Errorf("entry %q: want selector=namespace/serviceAccount", s)
	}
	sel, err := ParseSelector(s[:i])
	if err != nil {
		return Entry{}, fmt.Errorf("entry %q: %w", s, err)
	}
	ns, sa, ok := strings.Cut(s[i+1:], "/")
	if !ok {
		return Entry{}, fmt.Errorf("entry %q: identity %q is not namespace/serviceAccount", s, s[i+1:])
	}
	e := Entry{Selector: sel, Namespace: ns, ServiceAccount: sa}
	if _, err := identity.WorkloadID(spiffeid.RequireTrustDomainFromString("check.invalid"), ns, sa); err != nil {
		return Entry{}, fmt.Errorf("entry %q: %w", s, err)
	}
	return e, nil
}

// String is the inverse of ParseEntry.
func (e Entry) String() string {
	return e.Selector.String() + "=" + e.Namespace + "/" + e.ServiceAccount
}

// fileConfig is the YAML/JSON shape of an attestation table file:
//
//	entries:
//	- selector: uid:1000
//	  namespace: shop
//	  serviceAccount: web
type fileConfig struct {
	Entries []struct {
		Selector       string `json:"selector"`
		Namespace      string `json:"namespace"`
		ServiceAccount string `json:"serviceAccount"`
	} `json:"entries"`
}

// ParseTableConfig parses a YAML or JSON table file; unknown fields are errors.
// Every problem is reported, each with its entry index.
func ParseTableConfig(data []byte) ([]Entry, error) {
	var fc fileConfig
	if err := yaml.UnmarshalStrict(data, &fc); err != nil {
		return nil, fmt.Errorf("attestation table: %w", err)
	}
	var errs []error
	entries := make([]Entry, 0, len(fc.Entries))
	for i, fe := range fc.Entries {
		sel, err := ParseSelector(fe.Selector)
		if err != nil {
			errs = append(errs, fmt.Errorf("attestation table: entries[%d].selector: %w", i, err))
			continue
		}
		if _, err := identity.WorkloadID(spiffeid.RequireTrustDomainFromString("check.invalid"), fe.Namespace, fe.ServiceAccount); err != nil {
			errs = append(errs, fmt.Errorf("attestation table: entries[%d]: %w", i, err))
			continue
		}
		entries = append(entries, Entry{Selector: sel, Namespace: fe.Namespace, ServiceAccount: fe.ServiceAccount})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}

// Table is the local-mode Attestor: entries in order, first match wins.
type Table struct {
	td      spiffeid.TrustDomain
	entries []Entry
	ids     []spiffeid.ID
	// readExe returns the executable path of a pid; replaceable in tests.
	readExe func(pid int32) (string, error)
}

// NewTable builds a Table for trust domain td.
func NewTable(td spiffeid.TrustDomain, entries []Entry) (*Table, error) {
	t := &Table{td: td, entries: entries, readExe: procExe}
	for i, e := range entries {
		id, err := identity.WorkloadID(td, e.Namespace, e.ServiceAccount)
		if err != nil {
			return nil, fmt.Errorf("attestation table: entries[%d]: %w", i, err)
		}
		t.ids = append(t.ids, id)
	}
	return t, nil
}

// Attest implements Attestor.
func (t *Table) Attest(_ context.Context, c Caller) (spiffeid.ID, error) {
	var exe string
	var exeErr error
	exeRead := false
	for i, e := range t.entries {
		switch e.Selector.Kind {
		case SelectorUID:
			if c.UID == e.Selector.id {
				return t.ids[i], nil
			}
		case SelectorGID:
			if c.GID == e.Selector.id {
				return t.ids[i], nil
			}
		case SelectorExe:
			if !exeRead {
				exe, exeErr = t.readExe(c.PID)
				if exeErr == nil && c.Alive != nil && !c.Alive() {
					exeErr = fmt.Errorf("process %d exited; its pid may belong to another process now", c.PID)
				}
				exeRead = true
			}
			if exeErr == nil && exe == e.Selector.Value {
				return t.ids[i], nil
			}
		}
	}
	if exeErr != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: uid %d gid %d pid %d (exe unreadable: %v)", ErrNoIdentity, c.UID, c.GID, c.PID, exeErr)
	}
	return spiffeid.ID{}, fmt.Errorf("%w: uid %d gid %d pid %d matches no entry", ErrNoIdentity, c.UID, c.GID, c.PID)
}

func procExe(pid int32) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("no pid")
	}
	return os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
}
