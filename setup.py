"Installs directcms from settings.ini (the nbdev 2 layout)."
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic = licenses[cfg['license']]
requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
# the paper's SDXL path: text encoders, FID's Inception (torch-fidelity, which brings torchvision), 8-bit AdamW
paper_requirements = cfg.get('paper_requirements', '').split()

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=lic[0],
    classifiers=['Programming Language :: Python :: 3', 'License :: ' + lic[1]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    # the shipped digits teacher and classifier (safetensors + json, about 3 MB): the first run trains nothing
    package_data={cfg['lib_path']: ['assets/digits/*.json', 'assets/digits/*.safetensors', 'assets/digits/teacher/*.json',
                                    'assets/digits/teacher/*.safetensors']},
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'paper': paper_requirements},
    python_requires='>=' + cfg['min_python'],
    zip_safe=False,
)
