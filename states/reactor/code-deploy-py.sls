#!py
import hashlib
import hmac


def run():
    """
    Deploy the role named by the last part of the hook path when GitHub's
    X-Hub-Signature (HMAC-SHA1 of the body with the master's
    github:webhook-key) checks out. Salt's #!py reactor form, run by brine
    on Starlark.
    """
    _, signature = data['headers'].get('X-Hub-Signature').split('=')
    body = data['body']
    target = tag.split('/')[-1]
    key = __opts__.get('github', {}).get('webhook-key')
    if hmac.new(key, body, hashlib.sha1).hexdigest() == signature:
        post = data.get('post', {})
        if post.get('deleted') or post.get('after') == '0' * 40:
            # A deleted branch has nothing to deploy.
            return {}
        return {
            'github_webhook_deploy': {
                'local.state.sls': [
                    {'tgt': 'roles:{0}'.format(target)},
                    {'expr_form': 'grain'},
                    {'arg': ['{0}.deploy'.format(target), 'prod']},
                ]
            }
        }
    return {}
