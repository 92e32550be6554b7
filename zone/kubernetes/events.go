package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EventSource is the component named in the Events the controller
// creates.
const EventSource = "atoll-zone"

// maxEventMessage bounds an Event's message, well under what the API
// server accepts.
const maxEventMessage = 1024

// signature identifies a set of problems, whatever their order.
func signature(problems []Problem) string {
	s := make([]string, len(problems))
	for i, p := range problems {
		s[i] = p.String()
	}
	sort.Strings(s)
	return strings.Join(s, "\n")
}

// emit creates one Warning Event on pod per problem.
func (c *Controller) emit(ctx context.Context, pod *corev1.Pod, problems []Problem) error {
	now := metav1.NewTime(time.Now())
	for _, p := range problems {
		msg := p.Message
		if len(msg) > maxEventMessage {
			msg = msg[:maxEventMessage-3] + "..."
		}
		ev := &corev1.Event{
			// The API server adds a random suffix, cutting a long pod
			// name to fit.
			ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
			InvolvedObject: corev1.ObjectReference{
				APIVersion: "v1", Kind: "Pod",
				Namespace: pod.Namespace, Name: pod.Name,
				UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			},
			Reason:              p.Reason,
			Message:             msg,
			Type:                corev1.EventTypeWarning,
			Source:              corev1.EventSource{Component: EventSource},
			FirstTimestamp:      now,
			LastTimestamp:       now,
			Count:               1,
			ReportingController: "atoll.io/zone",
			ReportingInstance:   EventSource + "-" + c.cfg.Zone,
		}
		if _, err := c.cfg.Client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating Event %s on pod %s/%s: %w", p.Reason, pod.Namespace, pod.Name, explainForbidden(err))
		}
	}
	return nil
}
