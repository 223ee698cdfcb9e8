# Sourced by the chroot checks (debian13-check.sh, fresh-check.sh) once $root holds a system:
# mounts /proc and /dev there (unmounted on exit), copies the host's resolver and a proxy's
# certificate authority (where the host names one), and defines `in_root CMD`, which runs CMD with
# bash as root in the chroot with a clean environment.
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
trap 'umount "$root/dev" "$root/proc"' EXIT
cp /etc/resolv.conf "$root/etc/resolv.conf"
ca=${NODE_EXTRA_CA_CERTS:-}
[[ -n $ca && -f $ca ]] && cp "$ca" "$root/etc/ssl/certs/host-extra-ca.pem"
in_root() {
  chroot "$root" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin \
    ${ca:+NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-extra-ca.pem} \
    ${ca:+npm_config_cafile=/etc/ssl/certs/host-extra-ca.pem} bash -c "$1"
}
