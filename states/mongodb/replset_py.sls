#!py
"""
The replica set of mongodb/replset.sls written in Salt's #!py renderer:
every minion with the mongodb_server role, from the mine
(network.get_hostname), ordered by minion id and numbered from 0.
Apply it instead of the Jinja one with `state.apply mongodb.replset_py`;
the top file keeps the Jinja one, so the two never manage the same set.
"""


def run():
    port = __salt__['pillar.get']('mongodb:port', 27017)
    hostnames = __salt__['mine.get']('roles:mongodb_server', 'network.get_hostname', tgt_type='grain')
    members = []
    for i, minion_id in enumerate(sorted(hostnames.keys())):
        members.append({'_id': i, 'host': '{0}:{1}'.format(hostnames[minion_id], port)})
    if not members:
        return {}
    return {
        'mongodb-replset': {
            'mongodb.replset': [
                {'name': __salt__['pillar.get']('mongodb:replset', 'rs0')},
                {'members': members},
            ],
        },
    }
