package harness

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// BulkResult is one TCP bulk transfer.
type BulkResult struct {
	Bytes    int64
	Duration time.Duration
}

// MBps is the transfer rate in MB/s (10^6 bytes).
func (r BulkResult) MBps() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Duration.Seconds() / 1e6
}

// Bulk sends size bytes to the TCP sink at addr (directly or through a
// proxy) on one connection and waits for the sink's count; the transfer
// counts from dial to the count's arrival. A short count is an error: a
// proxy that loses bytes has no throughput to report.
func Bulk(addr string, size int64, timeout time.Duration) (BulkResult, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return BulkResult{}, fmt.Errorf("bulk: dial %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(start.Add(timeout))
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	if _, err := c.Write(hdr[:]); err != nil {
		return BulkResult{}, fmt.Errorf("bulk: %s: write length: %w", addr, err)
	}
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		m, err := c.Write(buf[:n])
		left -= int64(m)
		if err != nil {
			return BulkResult{}, fmt.Errorf("bulk: %s: write after %d bytes: %w", addr, size-left, err)
		}
	}
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return BulkResult{}, fmt.Errorf("bulk: %s: read the sink's count: %w", addr, err)
	}
	d := time.Since(start)
	if got := int64(binary.BigEndian.Uint64(hdr[:])); got != size {
		return BulkResult{}, fmt.Errorf("bulk: %s: sink counted %d bytes, sent %d", addr, got, size)
	}
	return BulkResult{Bytes: size, Duration: d}, nil
}
