package inject

import (
	"bytes"
	"testing"
	"time"
)

func mustCA(t testing.TB, notBefore time.Time, ttl time.Duration) *WebhookCA {
	t.Helper()
	ca, err := NewWebhookCA(notBefore, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func bundleOf(cas ...*WebhookCA) []byte {
	var b []byte
	for _, c := range cas {
		b = append(b, c.PEM()...)
	}
	return b
}

// TestMergeBundle: each replica's CA is added beside the others; expired,
// duplicate and unparseable ones go; at most MaxBundle stay, newest first.
func TestMergeBundle(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var old [6]*WebhookCA
	for i := range old {
		old[i] = mustCA(t, now.Add(-time.Duration(10-i)*time.Hour), 100*time.Hour) // old[5] newest
	}
	ours := mustCA(t, now, 100*time.Hour)
	expired := mustCA(t, now.Add(-3*time.Hour), time.Hour)
	cases := []struct {
		name   string
		bundle []byte
		want   []*WebhookCA
	}{
		{"empty", nil, []*WebhookCA{ours}},
		{"other replica kept", bundleOf(old[0]), []*WebhookCA{ours, old[0]}},
		{"already there", bundleOf(ours, old[0]), []*WebhookCA{ours, old[0]}},
		{"duplicates dropped", bundleOf(old[0], old[0], ours), []*WebhookCA{ours, old[0]}},
		{"expired dropped", bundleOf(expired, old[1]), []*WebhookCA{ours, old[1]}},
		{"garbage dropped", []byte("not pem"), []*WebhookCA{ours}},
		{"capped, oldest go", bundleOf(old[:]...), []*WebhookCA{ours, old[5], old[4], old[3]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := MergeBundle(c.bundle, ours.PEM(), now)
			if err != nil {
				t.Fatal(err)
			}
			if want := bundleOf(c.want...); !bytes.Equal(got, want) {
				certs, _ := parsePEMCerts(got)
				var names []string
				for _, c := range certs {
					names = append(names, c.Subject.CommonName)
				}
				t.Errorf("bundle holds %v", names)
			}
		})
	}
	if _, err := MergeBundle(nil, bundleOf(ours, old[0]), now); err == nil {
		t.Error("two certificates to add: want an error")
	}
}

// TestMergeBundleTieOrder: two replicas whose CAs start in the same second
// write the same bundle whichever publishes first, so they do not keep
// rewriting each other's order.
func TestMergeBundleTieOrder(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a, b := mustCA(t, now, time.Hour), mustCA(t, now, time.Hour)
	ab, err := MergeBundle(a.PEM(), b.PEM(), now)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := MergeBundle(b.PEM(), a.PEM(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, ba) {
		t.Error("the same two CAs merged in the other order give another bundle")
	}
	if certs, _ := parsePEMCerts(ab); len(certs) != 2 {
		t.Errorf("bundle holds %d certificates, want 2", len(certs))
	}
}
