package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// stored is an element as the kernel holds it.
type stored struct {
	key    []byte
	keyEnd []byte
	value  []byte
	owner  string
}

// elementQuery looks up one element by key.
type elementQuery struct {
	set *nftables.Set
	key []byte
}

// getChunk is how many lookups are in flight at once. The replies must fit
// the socket's receive buffer (about 200 KiB by default); each is well
// under 1 KiB.
const getChunk = 64

// getElements looks up each key with one NFT_MSG_GETSETELEM request, the
// netlink form of `nft get element`, and returns nil where the set has no
// such element. The kernel finds an element by key in constant time for a
// hash set and in logarithmic time for an interval set, so the cost does not
// grow with the number of VMs the way a dump of the set would. google/nftables
// v0.3.0 has no call for this, so the requests go over a socket of our own.
// A key inside an interval returns the interval's element.
func getElements(conn *netlink.Conn, queries []elementQuery) ([]*stored, error) {
	out := make([]*stored, len(queries))
	for start := 0; start < len(queries); start += getChunk {
		end := min(start+getChunk, len(queries))
		msgs := make([]netlink.Message, 0, end-start)
		for _, q := range queries[start:end] {
			m, err := getElementMessage(q)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
		}
		if _, err := conn.SendMessages(msgs); err != nil {
			return nil, fmt.Errorf("send element lookups: %w", err)
		}
		// The kernel handles the requests in order and sends exactly one
		// reply, the element or an error, for each.
		for i := start; i < end; i++ {
			replies, err := conn.Receive()
			switch {
			case errors.Is(err, unix.ENOENT):
				continue
			case err != nil:
				return nil, fmt.Errorf("look up element of set %s: %w", queries[i].set.Name, err)
			case len(replies) != 1:
				return nil, fmt.Errorf("look up element of set %s: got %d replies, want 1", queries[i].set.Name, len(replies))
			}
			elems, err := decodeElements(replies[0].Data)
			if err != nil {
				return nil, fmt.Errorf("decode element of set %s: %w", queries[i].set.Name, err)
			}
			if len(elems) > 0 {
				out[i] = elems[0]
			}
		}
	}
	return out, nil
}

func getElementMessage(q elementQuery) (netlink.Message, error) {
	key, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: q.key}})
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode key of set %s: %w", q.set.Name, err)
	}
	elem, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_SET_ELEM_KEY | unix.NLA_F_NESTED, Data: key}})
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode key of set %s: %w", q.set.Name, err)
	}
	list, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_LIST_ELEM | unix.NLA_F_NESTED, Data: elem}})
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode key of set %s: %w", q.set.Name, err)
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(q.set.Table.Name + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(q.set.Name + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_ELEMENTS | unix.NLA_F_NESTED, Data: list},
	})
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode lookup in set %s: %w", q.set.Name, err)
	}
	// nfgenmsg: family, version, resource id (big endian).
	header := []byte{byte(q.set.Table.Family), unix.NFNETLINK_V0, 0, 0}
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request,
		},
		Data: append(header, attrs...),
	}, nil
}

// decodeElements decodes the elements of a NFT_MSG_NEWSETELEM message.
func decodeElements(data []byte) ([]*stored, error) {
	if len(data) < 4 {
		return nil, errors.New("short message")
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	var out []*stored
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				if list.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				e := &stored{}
				list.Nested(e.decode)
				out = append(out, e)
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (e *stored) decode(ad *netlink.AttributeDecoder) error {
	value := func(dst *[]byte) func(*netlink.AttributeDecoder) error {
		return func(nested *netlink.AttributeDecoder) error {
			for nested.Next() {
				if nested.Type() == unix.NFTA_DATA_VALUE {
					*dst = nested.Bytes()
				}
			}
			return nil
		}
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			ad.Nested(value(&e.key))
		case nftables.NFTA_SET_ELEM_KEY_END:
			ad.Nested(value(&e.keyEnd))
		case unix.NFTA_SET_ELEM_DATA:
			ad.Nested(value(&e.value))
		case unix.NFTA_SET_ELEM_USERDATA:
			e.owner, _ = userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
		}
	}
	return nil
}

// fromElement converts an element of a google/nftables dump.
func fromElement(e nftables.SetElement) *stored {
	return &stored{key: e.Key, keyEnd: e.KeyEnd, value: e.Val, owner: e.Comment}
}
