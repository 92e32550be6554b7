package zonerbac

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Grant makes the ServiceAccount namespace/serviceAccount (created when
// missing) hold exactly rules: r.Cluster through a ClusterRole and
// ClusterRoleBinding, r.Namespace through a Role and RoleBinding in
// namespace. The roles are named after the ServiceAccount; granting again
// replaces their rules. client must be allowed to grant them (an admin).
func Grant(ctx context.Context, client kubernetes.Interface, namespace, serviceAccount string, r Rules) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount, Namespace: namespace}}
	if _, err := client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ServiceAccount %s/%s: %w", namespace, serviceAccount, err)
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: serviceAccount}}
	clusterName := "atoll-zone:" + namespace + ":" + serviceAccount

	roles := client.RbacV1().ClusterRoles()
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: clusterName}, Rules: r.Cluster}
	if err := createOrUpdate("ClusterRole "+clusterName, func() error {
		_, err := roles.Create(ctx, cr, metav1.CreateOptions{})
		return err
	}, func() error {
		old, err := roles.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		old.Rules = r.Cluster
		_, err = roles.Update(ctx, old, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return err
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: clusterName}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterName}}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ClusterRoleBinding %s: %w", clusterName, err)
	}

	name := "atoll-zone:" + serviceAccount
	nsRoles := client.RbacV1().Roles(namespace)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Rules: r.Namespace}
	if err := createOrUpdate("Role "+namespace+"/"+name, func() error {
		_, err := nsRoles.Create(ctx, role, metav1.CreateOptions{})
		return err
	}, func() error {
		old, err := nsRoles.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		old.Rules = r.Namespace
		_, err = nsRoles.Update(ctx, old, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return err
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}}
	if _, err := client.RbacV1().RoleBindings(namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating RoleBinding %s/%s: %w", namespace, name, err)
	}
	return nil
}

// createOrUpdate runs create, and update when the object exists already.
func createOrUpdate(what string, create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		err = update()
	}
	if err != nil {
		return fmt.Errorf("granting the zone's rules: %s: %w", what, err)
	}
	return nil
}
