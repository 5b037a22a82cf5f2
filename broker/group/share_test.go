package group

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func shareHB(c *Coordinator, group, member string, epoch int32, topics ...string) *kmsg.ShareGroupHeartbeatResponse {
	r := kmsg.NewPtrShareGroupHeartbeatRequest()
	r.Version = 1
	r.GroupID, r.MemberID, r.MemberEpoch = group, member, epoch
	if topics != nil {
		r.SubscribedTopicNames = topics
	}
	return c.ShareGroupHeartbeat(r, "client", "/127.0.0.1")().(*kmsg.ShareGroupHeartbeatResponse)
}

func assigned(r *kmsg.ShareGroupHeartbeatResponse) []int32 {
	if r.Assignment == nil {
		return nil
	}
	var out []int32
	for _, tp := range r.Assignment.TopicPartitions {
		out = append(out, tp.Partitions...)
	}
	slices.Sort(out)
	return out
}

func TestShareGroupAssignsAndShares(t *testing.T) {
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{})
	a := shareHB(c, "g", "member-a", 0, "emails")
	if a.ErrorCode != 0 || a.MemberEpoch < 1 || len(assigned(a)) != 3 {
		t.Fatalf("first member: code %d epoch %d assigned %v, want all 3 partitions", a.ErrorCode, a.MemberEpoch, assigned(a))
	}
	b := shareHB(c, "g", "member-b", 0, "emails")
	if b.ErrorCode != 0 || len(assigned(b)) == 0 {
		t.Fatalf("second member: code %d assigned %v", b.ErrorCode, assigned(b))
	}
	// a learns its smaller share on its next heartbeat, at the new epoch.
	a2 := shareHB(c, "g", "member-a", a.MemberEpoch)
	if a2.ErrorCode != 0 || a2.MemberEpoch <= a.MemberEpoch || a2.Assignment == nil {
		t.Fatalf("a's heartbeat after b joined: code %d epoch %d assignment %v", a2.ErrorCode, a2.MemberEpoch, a2.Assignment)
	}
	if got := append(assigned(a2), assigned(b)...); len(got) != 3 {
		t.Errorf("two members hold %v, want the three partitions split", got)
	}
	// More members than partitions: every member still gets one.
	for i := range 4 {
		r := shareHB(c, "g", fmt.Sprintf("extra-%d", i), 0, "emails")
		if len(assigned(r)) != 1 {
			t.Errorf("member %d of 6 got %v, want one shared partition", i+3, assigned(r))
		}
	}
	// A heartbeat with an epoch that is neither current nor previous is fenced.
	if r := shareHB(c, "g", "member-b", b.MemberEpoch+100); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Errorf("stale epoch: code %d, want FENCED_MEMBER_EPOCH", r.ErrorCode)
	}
	// Leaving answers epoch -1; the group describes what is left.
	if r := shareHB(c, "g", "member-a", -1); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Errorf("leave: code %d epoch %d", r.ErrorCode, r.MemberEpoch)
	}
	d := kmsg.NewPtrShareGroupDescribeRequest()
	d.GroupIDs = []string{"g", "nope"}
	resp := c.ShareGroupDescribe(d)().(*kmsg.ShareGroupDescribeResponse)
	if g := resp.Groups[0]; g.ErrorCode != 0 || len(g.Members) != 5 || g.GroupState != "Stable" || g.Assignor != "simple" {
		t.Errorf("describe: code %d, %d members, state %s", g.ErrorCode, len(g.Members), g.GroupState)
	}
	if resp.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Errorf("describe of an unknown group: code %d", resp.Groups[1].ErrorCode)
	}
	// ListGroups shows it as a share group, and a classic join under its
	// name is refused.
	lg := kmsg.NewPtrListGroupsRequest()
	lg.Version = 5
	lg.TypesFilter = []string{"share"}
	if groups := c.ListGroups(lg)().(*kmsg.ListGroupsResponse).Groups; len(groups) != 1 || groups[0].GroupType != "share" {
		t.Errorf("ListGroups(share) = %+v", groups)
	}
	if r, _ := join(c, "g", joinReq{}); r().(*kmsg.JoinGroupResponse).ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Error("a classic member joined a share group's name")
	}
}

func TestShareGroupRefusals(t *testing.T) {
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{Share: ShareConfig{SessionTimeout: 50 * time.Millisecond, MaxSize: 2}})
	if r := shareHB(c, "g", "", 0, "t"); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("empty member id: code %d", r.ErrorCode)
	}
	if r := shareHB(c, "g", "m", 0); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("join without topics: code %d", r.ErrorCode)
	}
	if r := shareHB(c, "nope", "m", 3); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Errorf("heartbeat to a missing group: code %d", r.ErrorCode)
	}
	shareHB(c, "g", "m1", 0, "t")
	shareHB(c, "g", "m2", 0, "t")
	if r := shareHB(c, "g", "m3", 0, "t"); r.ErrorCode != kerr.GroupMaxSizeReached.Code {
		t.Errorf("third member over a max size of 2: code %d", r.ErrorCode)
	}
	if r := shareHB(c, "g", "ghost", 4); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("unknown member: code %d", r.ErrorCode)
	}
	// Sessions expire: the members are gone.
	deadline := time.Now().Add(5 * time.Second)
	for shareHB(c, "g", "m1", 1).ErrorCode != kerr.UnknownMemberID.Code {
		if time.Now().After(deadline) {
			t.Fatal("share member never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A classic group's name cannot become a share group.
	if code := commit(c, "classic", "", -1, "t", 0, 1); code != 0 {
		t.Fatal(code)
	}
	if r := shareHB(c, "classic", "m", 0, "t"); r.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Errorf("share join of a classic group: code %d", r.ErrorCode)
	}
}

// TestShareGroupMembers: the offset administration APIs learn whether a
// share group is empty; create makes an unknown one (Kafka 4.2's
// AlterShareGroupOffsets), a classic group is not a share group, and a
// bad name is refused.
func TestShareGroupMembers(t *testing.T) {
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{})
	if n, known, code := c.ShareGroupMembers("g", false); n != 0 || known || code != 0 {
		t.Fatalf("unknown group: %d %v %d", n, known, code)
	}
	shareHB(c, "g", "m1", 0, "t")
	shareHB(c, "g", "m2", 0, "t")
	if n, known, code := c.ShareGroupMembers("g", false); n != 2 || !known || code != 0 {
		t.Fatalf("two members: %d %v %d", n, known, code)
	}
	shareHB(c, "g", "m1", -1)
	shareHB(c, "g", "m2", -1)
	if n, known, code := c.ShareGroupMembers("g", false); n != 0 || !known || code != 0 {
		t.Fatalf("after both left: %d %v %d", n, known, code)
	}
	if n, known, code := c.ShareGroupMembers("fresh", true); n != 0 || !known || code != 0 {
		t.Fatalf("created: %d %v %d", n, known, code)
	}
	if _, known, _ := c.ShareGroupMembers("fresh", false); !known {
		t.Fatal("the created group was forgotten")
	}
	lr := kmsg.NewPtrListGroupsRequest()
	lr.Version, lr.TypesFilter = 5, []string{"share"}
	ls := c.ListGroups(lr)().(*kmsg.ListGroupsResponse)
	if !slices.ContainsFunc(ls.Groups, func(g kmsg.ListGroupsResponseGroup) bool { return g.Group == "fresh" && g.GroupState == "Empty" }) {
		t.Errorf("the created group is not listed: %+v", ls.Groups)
	}
	if code := commit(c, "classic", "", -1, "t", 0, 1); code != 0 {
		t.Fatal(code)
	}
	if _, known, code := c.ShareGroupMembers("classic", true); known || code != kerr.GroupIDNotFound.Code {
		t.Errorf("a classic group: known %v code %d", known, code)
	}
	if _, _, code := c.ShareGroupMembers("", false); code != kerr.InvalidGroupID.Code {
		t.Errorf("empty group id: code %d", code)
	}
}
