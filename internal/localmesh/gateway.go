package localmesh

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The east-west gateway's identity (multi-cluster contract):
// spiffe://<td>/ns/causeway-system/sa/causeway-gateway.
const gatewayNS, gatewaySA = "causeway-system", "causeway-gateway"

func gatewayID(td spiffeid.TrustDomain) spiffeid.ID {
	return spiffeid.RequireFromSegments(td, "ns", gatewayNS, "sa", gatewaySA)
}

// gatewayProc is a cluster's `causeway gateway` child.
type gatewayProc struct {
	listen string // where linked clusters' sidecars dial it
	admin  string
	id     spiffeid.ID
	node   string
	proc   *child
}

// newGatewayProc picks the gateway's addresses before anything starts:
// federation tells linked clusters where the gateway listens. The Cluster's
// gatewayPort, or a free port.
func (c *cluster) newGatewayProc() (*gatewayProc, error) {
	port := c.def.GatewayPort
	if port == 0 {
		p, err := c.m.ports.free()
		if err != nil {
			return nil, err
		}
		port = p
	}
	admin, err := c.m.ports.free()
	if err != nil {
		return nil, err
	}
	return &gatewayProc{
		listen: "127.0.0.1:" + strconv.Itoa(int(port)),
		admin:  "127.0.0.1:" + strconv.Itoa(int(admin)),
		id:     gatewayID(c.td),
		node:   c.name + "-gateway",
	}, nil
}

// startGateway runs the cluster's east-west gateway as a child, attested
// by its PID like the sidecars, and waits until it has a config.
func (c *cluster) startGateway() error {
	g := c.gateway
	logFile, err := os.Create(filepath.Join(c.runDir, "gateway.log"))
	if err != nil {
		return err
	}
	argv := []string{c.m.opts.Binary, "gateway", "--listen", g.listen, "--admin", g.admin,
		"--control", c.grpcAddr, "--control-id", c.ctlID.String(), "--spiffe-socket", "unix://" + c.sock, "--node", g.node}
	g.proc, err = startChild(g.node, argv, os.Environ(), c.absDir, logFile, func(ch *child) {
		logFile.Close()
		c.attestor.remove(ch.pid())
		if c.m.ctx.Err() == nil {
			c.printf("%s gateway exited: %v; its last words:\n%s", time.Now().Format("15:04:05"), ch.err, tail(logFile.Name(), 3))
		}
	})
	if err != nil {
		logFile.Close()
		return err
	}
	c.attestor.add(g.proc.pid(), g.id)
	if err := waitReady(c.m.ctx, g.admin, g.proc, 15*time.Second); err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	c.printf("  gateway        %s (SPIFFE ID %s, admin http://%s, pid %d)", g.listen, g.id, g.admin, g.proc.pid())
	if c.fedAddr != "" {
		c.printf("  federation     %s (the address in %s's peering tokens)", c.fedAddr, c.name)
	}
	return nil
}
