package sidecar

import (
	"fmt"
	"log/slog"
)

// spiffeLog hands go-spiffe's Workload API client log lines to slog. Without
// it they are dropped, and a sidecar that is refused its SVID
// (PermissionDenied: a wrong, expired or revoked token) would only say that
// its wait for the first SVID timed out, not why.
type spiffeLog struct{ lg *slog.Logger }

func (l spiffeLog) Debugf(format string, args ...any) {
	l.lg.Debug(fmt.Sprintf(format, args...), "component", "workloadapi-client")
}

func (l spiffeLog) Infof(format string, args ...any) {
	l.lg.Info(fmt.Sprintf(format, args...), "component", "workloadapi-client")
}

func (l spiffeLog) Warnf(format string, args ...any) {
	l.lg.Warn(fmt.Sprintf(format, args...), "component", "workloadapi-client")
}

// Errorf is logged as a warning: the client retries every error it reports
// this way, so none is final by itself.
func (l spiffeLog) Errorf(format string, args ...any) {
	l.lg.Warn(fmt.Sprintf(format, args...), "component", "workloadapi-client")
}
