package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/adapters/istio"
	"github.com/causeway-mesh/causeway/adapters/linkerd"
	"github.com/causeway-mesh/causeway/spec"
)

func newTranslateCmd() *cobra.Command {
	var in inputFlags
	var to, output string
	var mo meshOptions
	cmd := &cobra.Command{
		Use:   "translate -f PATH... --to spec|istio|linkerd|gateway-api",
		Short: "Print what manifests mean in Causeway's model or as another mesh's resources",
		Long: `Translate reads manifests like validate and prints the canonical snapshot they
build (--to spec), or that snapshot as another mesh's native resources:
--to istio (VirtualService, AuthorizationPolicy, ServiceEntry; Istio ` + istio.Version + ` CRDs),
--to linkerd (Gateway API routes, Server, AuthorizationPolicy,
MeshTLSAuthentication; Linkerd ` + linkerd.Version + `), --to gateway-api (GAMMA HTTPRoute,
TCPRoute; Gateway API ` + gatewayapi.Version + `). Resources print as multi-document YAML or
a JSON List. The same inputs, in any order, always print the same bytes.
Warnings (including everything the target cannot express, each naming the
input file, object and field) and ignored objects go to stderr; when the
inputs are invalid nothing is printed on stdout and the exit status is 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch to {
			case "spec", "istio", "linkerd", "gateway-api":
			default:
				return usageErr("--to %q: want spec, istio, linkerd or gateway-api", to)
			}
			if output != "json" && output != "yaml" {
				return usageErr("-o %q: want json or yaml", output)
			}
			if err := mo.check(); err != nil {
				return err
			}
			snap, diags, ignored, err := in.load(cmd)
			if err != nil {
				return err
			}
			if diags.HasErrors() {
				writeDiagnostics(cmd.ErrOrStderr(), diags, ignored)
				return &exitError{code: 1, err: fmt.Errorf("invalid: %s", count(len(diags.Errors()), "error"))}
			}
			if to != "spec" {
				objs, rdiags := mo.render(to, snap)
				diags = append(diags, rdiags...)
				diags.Sort()
				writeDiagnostics(cmd.ErrOrStderr(), diags, ignored)
				if rdiags.HasErrors() {
					return &exitError{code: 1, err: fmt.Errorf("%s cannot express the inputs: %s", to, count(len(rdiags.Errors()), "error"))}
				}
				out, err := gatewayapi.Encode(objs, output)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			writeDiagnostics(cmd.ErrOrStderr(), diags, ignored)
			out := snap.JSON()
			if output == "yaml" {
				// Converted from the canonical JSON, so YAML keys come out
				// sorted and the bytes are as deterministic as the JSON.
				if out, err = yaml.JSONToYAML(out); err != nil {
					return fmt.Errorf("render YAML: %w", err)
				}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	in.register(cmd)
	cmd.Flags().StringVar(&to, "to", "spec", "target: spec, istio, linkerd or gateway-api")
	mo.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "json", "output format: json or yaml")
	return cmd
}

// meshOptions are the flags of the mesh targets.
type meshOptions struct {
	clusterDomain   string
	cluster         string
	gatewayAddrs    []string
	gatewayIdentity string
	channel         string
	linkerdNS       string
	gatewayID       spiffeid.ID
}

func (m *meshOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&m.clusterDomain, "cluster-domain", "cluster.local", "Kubernetes DNS domain of service host names (istio)")
	f.StringVar(&m.cluster, "cluster", "", "this cluster's name in host names of exported services (istio; default: the trust domain)")
	f.StringArrayVar(&m.gatewayAddrs, "gateway-address", nil, "HOST:PORT of this cluster's Causeway east-west gateway, for exported services (istio); repeatable")
	f.StringVar(&m.gatewayIdentity, "gateway-identity", "", "SPIFFE ID of that gateway (istio; default spiffe://<td>/ns/causeway-system/sa/causeway-gateway)")
	f.StringVar(&m.channel, "gateway-api-channel", "experimental", "Gateway API channel: experimental (TCPRoute/UDPRoute for L4 splits) or standard (gateway-api)")
	f.StringVar(&m.linkerdNS, "linkerd-namespace", "linkerd", "Linkerd control-plane namespace, part of identity names (linkerd)")
}

func (m *meshOptions) check() error {
	if m.channel != "standard" && m.channel != "experimental" {
		return usageErr("--gateway-api-channel %q: want standard or experimental", m.channel)
	}
	if m.gatewayIdentity != "" {
		id, err := spiffeid.FromString(m.gatewayIdentity)
		if err != nil {
			return usageErr("--gateway-identity %q: %v", m.gatewayIdentity, err)
		}
		m.gatewayID = id
	}
	return nil
}

func (m *meshOptions) render(to string, s *spec.Snapshot) ([]*unstructured.Unstructured, spec.Diagnostics) {
	switch to {
	case "istio":
		return istio.Render(s, istio.Options{ClusterDomain: m.clusterDomain, Cluster: m.cluster, GatewayAddrs: m.gatewayAddrs, GatewayIdentity: m.gatewayID})
	case "linkerd":
		return linkerd.Render(s, linkerd.Options{ControlPlaneNamespace: m.linkerdNS})
	default:
		return gatewayapi.Render(s, gatewayapi.Options{Standard: m.channel == "standard"})
	}
}
