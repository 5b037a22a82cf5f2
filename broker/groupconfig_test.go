package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestGroupConfigs(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	alter := func(op kmsg.IncrementalAlterConfigOp, name string, value *string) int16 {
		t.Helper()
		r := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "workers"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Op, c.Name, c.Value = op, name, value
		rr.Configs = append(rr.Configs, c)
		r.Resources = append(r.Resources, rr)
		resp, err := r.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Resources[0].ErrorCode
	}
	describe := func() map[string]kmsg.DescribeConfigsResponseResourceConfig {
		t.Helper()
		r := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "workers"
		r.Resources = append(r.Resources, rr)
		resp, err := r.RequestWith(ctx(t), cl)
		if err != nil || resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("describe: %v %v", err, resp)
		}
		out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
		for _, c := range resp.Resources[0].Configs {
			out[c.Name] = c
		}
		return out
	}
	s := func(v string) *string { return &v }
	if got := describe()["share.auto.offset.reset"]; *got.Value != "latest" || got.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("default share.auto.offset.reset = %s from %v", *got.Value, got.Source)
	}
	if code := alter(kmsg.IncrementalAlterConfigOpSet, "share.auto.offset.reset", s("earliest")); code != 0 {
		t.Fatalf("set: code %d", code)
	}
	if code := alter(kmsg.IncrementalAlterConfigOpSet, "share.delivery.count.limit", s("3")); code != 0 {
		t.Fatalf("set: code %d", code)
	}
	got := describe()
	if v := got["share.auto.offset.reset"]; *v.Value != "earliest" || v.Source != kmsg.ConfigSourceGroupConfig {
		t.Errorf("share.auto.offset.reset = %s from %v after SET", *v.Value, v.Source)
	}
	if v := got["share.delivery.count.limit"]; *v.Value != "3" || v.ConfigType != kmsg.ConfigTypeInt {
		t.Errorf("share.delivery.count.limit = %s (%v)", *v.Value, v.ConfigType)
	}
	for _, bad := range []struct{ name, value string }{
		{"share.auto.offset.reset", "sometimes"},
		{"share.delivery.count.limit", "1"},
		{"share.record.lock.duration.ms", "10"},
		{"share.dead.letter.topic", "bad name!"},
		{"no.such.config", "1"},
	} {
		if code := alter(kmsg.IncrementalAlterConfigOpSet, bad.name, s(bad.value)); code != kerr.InvalidConfig.Code {
			t.Errorf("SET %s=%s: code %d, want INVALID_CONFIG", bad.name, bad.value, code)
		}
	}
	if code := alter(kmsg.IncrementalAlterConfigOpDelete, "share.auto.offset.reset", nil); code != 0 {
		t.Fatalf("delete: code %d", code)
	}
	if v := describe()["share.auto.offset.reset"]; *v.Value != "latest" {
		t.Errorf("after DELETE: %s, want the default", *v.Value)
	}
}
